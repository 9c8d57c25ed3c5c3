/** @module What the pipeline adds to the runtime's name spaces: its events, error codes and config keys. */
import { z } from "zod";
import { defineConfig, secs } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";
import { STAGES } from "./stages.ts";

const itemId = z.string();
const agentId = z.string();
const stage = z.enum(STAGES);

export const pipelineContract = defineContract({
  events: {
    item_created: { topic: "items", schema: z.object({ item_id: itemId, item: z.record(z.string(), z.unknown()) }) },
    item_updated: {
      topic: "items",
      schema: z.object({
        item_id: itemId,
        item: z.record(z.string(), z.unknown()).nullable(),
        fields: z.array(z.string()),
      }),
    },
    transition: {
      topic: "items",
      schema: z.object({
        item_id: itemId,
        from: stage,
        to: stage,
        agent_id: agentId.nullable(),
        reason: z.string().nullable(),
        /** The item's final usage totals, on a move into done, abandoned or archived. */
        usage: z.record(z.string(), z.number()).optional(),
      }),
    },
    claimed: {
      topic: "items",
      schema: z.object({ item_id: itemId, agent_id: agentId, fence: z.number().int(), expires_at: z.string() }),
    },
    claim_released: {
      topic: "items",
      schema: z.object({
        item_id: itemId,
        agent_id: agentId,
        reason: z.enum(["released", "expired", "stale", "lost"]),
      }),
    },
    assigned: { topic: "items", schema: z.object({ item_id: itemId, agent_id: agentId }) },
  },
  errors: {
    claimed: 409,
    illegal_transition: 409,
    stale_fence: 409,
    blocked_by_deps: 409,
    not_holder: 409,
  },
  config: [
    defineConfig("pipeline", {
      auto_assign: z.boolean().default(true),
      claim_ttl_secs: secs.default(3600),
      claim_confirm_secs: secs.default(15),
      done_retention_secs: secs.default(14_400),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    pipeline: typeof pipelineContract;
  }
}

/** @module What triggers add to the runtime's name spaces: their events and config key. */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";

export const triggersContract = defineContract({
  events: {
    trigger_added: {
      topic: "triggers",
      schema: z.object({ trigger_id: z.string(), label: z.string().nullable(), event: z.string() }),
    },
    trigger_fired: {
      topic: "triggers",
      schema: z.object({
        trigger_id: z.string(),
        event_type: z.string(),
        item_id: z.string().nullable(),
        result: z.enum(["ok", "error"]),
        error: z.string().optional(),
      }),
    },
    trigger_cancelled: { topic: "triggers", schema: z.object({ trigger_id: z.string() }) },
    trigger_loop_halted: {
      topic: "triggers",
      schema: z.object({
        trigger_id: z.string(),
        event_type: z.string(),
        item_id: z.string().nullable(),
        depth: z.number().int(),
        /** depth: the chain reached its depth limit; budget: it used up `triggers.max_actions_per_event`. */
        reason: z.enum(["depth", "budget"]),
      }),
    },
  },
  config: [
    defineConfig("triggers", {
      max_actions_per_event: z.number().int().min(1).max(10_000).default(100),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    triggers: typeof triggersContract;
  }
}

/** @module What heartbeats add to the runtime's name spaces: their events and config keys. */
import { z } from "zod";
import { defineConfig, secs } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";
import { heartbeatSchema } from "./file.ts";

const agentId = z.string();
const status = z.enum(["active", "idle", "stale"]);

export const heartbeatsContract = defineContract({
  events: {
    heartbeat: {
      topic: "agents",
      schema: z.object({
        agent_id: agentId,
        machine_id: z.string(),
        last_heartbeat: z.string(),
        active_item_id: z.string().nullable(),
        state: z.string(),
        clock_skew: z.boolean(),
        // optional on the wire: a relay from a daemon older than `accepts_work` still reaches the gateway
        accepts_work: heartbeatSchema.shape.accepts_work,
      }),
    },
    agent_status: { topic: "agents", schema: z.object({ agent_id: agentId, status, previous: status.nullable() }) },
    agent_gone: { topic: "agents", schema: z.object({ agent_id: agentId }) },
    agent_paused: { topic: "agents", schema: z.object({ agent_id: agentId, until: z.string() }) },
    agent_resumed: { topic: "agents", schema: z.object({ agent_id: agentId }) },
  },
  config: [
    defineConfig("heartbeats", {
      idle_after_secs: secs.default(300),
      stale_after_secs: secs.default(1800),
      poll_secs: secs.default(30),
      takeover_grace_secs: secs.default(60),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    heartbeats: typeof heartbeatsContract;
  }
}

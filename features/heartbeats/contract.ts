/** @module What heartbeats add to the runtime's name spaces: their events and config keys. */
import { z } from "zod";
import { defineConfig, secs } from "../../core/config.ts";
import { defineEvents } from "../../core/events.ts";

const agentId = z.string();
const status = z.enum(["active", "idle", "stale"]);

export const heartbeatEvents = defineEvents({
  heartbeat: {
    topic: "agents",
    schema: z.object({
      agent_id: agentId,
      machine_id: z.string(),
      last_heartbeat: z.string(),
      active_item_id: z.string().nullable(),
      state: z.string(),
      clock_skew: z.boolean(),
    }),
  },
  agent_status: { topic: "agents", schema: z.object({ agent_id: agentId, status, previous: status.nullable() }) },
  agent_gone: { topic: "agents", schema: z.object({ agent_id: agentId }) },
  agent_paused: { topic: "agents", schema: z.object({ agent_id: agentId, until: z.string() }) },
  agent_resumed: { topic: "agents", schema: z.object({ agent_id: agentId }) },
});

export const heartbeatConfig = defineConfig("heartbeats", {
  idle_after_secs: secs.default(300),
  stale_after_secs: secs.default(1800),
  poll_secs: secs.default(30),
  takeover_grace_secs: secs.default(60),
});

type _Events = typeof heartbeatEvents;

declare module "../../core/events.ts" {
  interface EventMap extends _Events {}
}
declare module "../../core/config.ts" {
  interface ConfigParts {
    heartbeats: typeof heartbeatConfig;
  }
}

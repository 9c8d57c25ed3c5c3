/**
 * @module Every event type drover publishes, with its zod schema and WebSocket topic, in one place.
 * A feature publishes only types listed here; `bus.publish` validates the fields against the schema.
 */
import { z } from "zod";

const stage = z.string();
const itemId = z.string();
const agentId = z.string();

export const eventTypes = {
  gap: { topic: "system", schema: z.object({ dropped: z.number().int() }) },
  reconciled: {
    topic: "system",
    schema: z.object({ feature: z.string(), report: z.record(z.string(), z.unknown()) }),
  },

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
  agent_status: {
    topic: "agents",
    schema: z.object({ agent_id: agentId, status: z.enum(["active", "idle", "stale"]), previous: z.enum(["active", "idle", "stale"]).nullable() }),
  },
  agent_gone: { topic: "agents", schema: z.object({ agent_id: agentId }) },
  agent_paused: { topic: "agents", schema: z.object({ agent_id: agentId, until: z.string() }) },
  agent_resumed: { topic: "agents", schema: z.object({ agent_id: agentId }) },

  item_created: { topic: "items", schema: z.object({ item_id: itemId, item: z.record(z.string(), z.unknown()) }) },
  item_updated: {
    topic: "items",
    schema: z.object({ item_id: itemId, item: z.record(z.string(), z.unknown()).nullable(), fields: z.array(z.string()) }),
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
  worktree_created: { topic: "items", schema: z.object({ item_id: itemId, path: z.string(), branch: z.string() }) },
  worktree_removed: { topic: "items", schema: z.object({ item_id: itemId, path: z.string() }) },
  worktree_kept: { topic: "items", schema: z.object({ item_id: itemId, path: z.string(), reason: z.string() }) },
  timer_added: { topic: "timers", schema: z.object({ timer_id: z.string(), label: z.string().nullable(), next_fire_at: z.string().nullable() }) },
  timer_fired: {
    topic: "timers",
    schema: z.object({
      timer_id: z.string(),
      label: z.string().nullable(),
      due_at: z.string(),
      fired_at: z.string(),
      late_ms: z.number(),
      result: z.enum(["ok", "error"]),
      error: z.string().optional(),
    }),
  },
  timer_cancelled: { topic: "timers", schema: z.object({ timer_id: z.string() }) },
  timer_interrupted: { topic: "timers", schema: z.object({ timer_id: z.string(), label: z.string().nullable(), due_at: z.string() }) },

  trigger_added: { topic: "triggers", schema: z.object({ trigger_id: z.string(), label: z.string().nullable(), event: z.string() }) },
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

  op_rejected: {
    topic: "sync",
    schema: z.object({ op: z.string(), op_id: z.string(), item_id: z.string().nullable(), code: z.string(), reason: z.string() }),
  },
  synced: { topic: "sync", schema: z.object({ head: z.string(), pushed: z.boolean(), fetched: z.number().int(), confirmed: z.number().int(), rejected: z.number().int() }) },
  hub_invalid_file: { topic: "sync", schema: z.object({ path: z.string(), reason: z.string() }) },
  /** The remote branch had fallen behind this machine's confirmed history (a rewind): it was pushed back. */
  hub_restored: { topic: "sync", schema: z.object({ head: z.string(), remote_was: z.string().nullable() }) },
  /** The remote branch was rewritten: sync stops until `drover sync adopt` or `drover sync restore`. */
  hub_diverged: { topic: "sync", schema: z.object({ local: z.string(), remote: z.string() }) },
  /** Committed config values with effects wait for `drover trust` on this machine. */
  config_untrusted: { topic: "system", schema: z.object({ keys: z.array(z.string()), command: z.string() }) },
} as const satisfies Record<string, { topic: string; schema: z.ZodObject }>;

export type EventType = keyof typeof eventTypes;
export type EventFields<T extends EventType> = z.input<(typeof eventTypes)[T]["schema"]>;
export type Topic = (typeof eventTypes)[EventType]["topic"];
export const topics: readonly string[] = [...new Set(Object.values(eventTypes).map((e) => e.topic))];

/** What caused an event: set when a timer or trigger action led to it, so trigger chains can be bounded. */
export interface EventCause {
  trigger_id?: string;
  timer_id?: string;
  depth: number;
  /** The chain this event belongs to (the id of its originating event's first firing): bounds a chain's width. */
  chain?: string;
}

/** An event as subscribers, WebSocket clients and the gateway see it. */
export type BusEvent<T extends EventType = EventType> = {
  type: T;
  at: string;
  origin: "local" | "remote";
  cause?: EventCause;
} & EventFields<T>;

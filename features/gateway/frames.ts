/**
 * @module The relay protocol, shared by the relay and the gateway: the upgrade header, the frame limit, and the
 * zod schemas of `hello`, `snapshot` and `event` frames. Agents and items travel as the gateway's views: known
 * fields only, strings bounded, no item bodies. The relay builds its snapshot to fit the frame limit.
 */
import { z } from "zod";
import type { BusEvent } from "../../core/events.ts";

/** A relay's frames may be this big; a snapshot is built to fit. Bigger frames close the relay (1009). */
export const RELAY_FRAME_BYTES = 2 * 1024 * 1024;
/** The upgrade header naming the relay's project (with `Authorization: Bearer <the project's token>`). */
export const PROJECT_HEADER = "x-drover-project";
export const MAX_AGENTS = 1000;
export const MAX_ITEMS = 10_000;

const text = (max: number) => z.string().max(max);
/** UTC only: the gateway orders events and snapshots by comparing these strings. */
const time = z.iso.datetime();

export const agentViewSchema = z.object({
  agent_id: text(128).min(1),
  machine_id: text(128).nullable().default(null),
  status: text(32),
  last_heartbeat: text(64).nullable().default(null),
  active_item_id: text(64).nullable().default(null),
  state: text(64).nullable().default(null),
  paused_until: text(64).nullable().default(null),
  clock_skew: z.boolean().default(false),
});

export const itemViewSchema = z.object({
  id: text(64).min(1),
  title: text(500),
  labels: z.array(text(64)).max(50).default([]),
  priority: z.number().int().min(0).max(9).default(2),
  stage: text(32).min(1),
  depends_on: z.array(text(64)).max(100).default([]),
  claim: z
    .object({
      agent_id: text(128),
      machine_id: text(128),
      claimed_at: text(64),
      expires_at: text(64),
      fence: z.number().int(),
    })
    .nullable()
    .default(null),
  created_at: text(64),
  created_by: text(128).default(""),
  updated_at: text(64),
  /** Where its work landed (merge): small, so it travels; notes and bodies do not. */
  merged: z
    .object({ sha: text(64), base: text(255), strategy: text(16), at: text(64) })
    .nullable()
    .default(null),
});

export type AgentView = z.output<typeof agentViewSchema>;
export type ItemView = z.output<typeof itemViewSchema>;

export const helloSchema = z.object({
  type: z.literal("hello"),
  project: text(64),
  machine_id: text(128).min(1),
  version: text(64),
});

export const snapshotSchema = z.object({
  type: z.literal("snapshot"),
  at: time,
  agents: z.array(agentViewSchema).max(MAX_AGENTS),
  items: z.array(itemViewSchema).max(MAX_ITEMS),
  timers: z.number().int().min(0).default(0),
  triggers: z.number().int().min(0).default(0),
  /** Items (and agents) the relay left out to fit the frame limit: the least recently updated. */
  items_left_out: z.number().int().min(0).default(0),
  agents_left_out: z.number().int().min(0).default(0),
});

/** The envelope of a relayed event; its fields are checked against the event type's own schema (core/events.ts). */
export const eventFrameSchema = z.object({
  type: z.literal("event"),
  event: z.object({
    type: text(64),
    at: time,
    origin: z.enum(["local", "remote"]).optional(),
    machine_id: text(128).optional(),
  }),
});

export type Snapshot = z.output<typeof snapshotSchema>;

export interface SnapshotParts {
  agents: unknown[];
  items: unknown[];
  timers: number;
  triggers: number;
}

export interface SnapshotSummary {
  at: string;
  bytes: number;
  agents: number;
  items: number;
  agents_left_out: number;
  items_left_out: number;
}

/**
 * The snapshot frame for `parts`, at most `limit` bytes: agents and items as the gateway's views (an invalid
 * one is left out); when they do not all fit, the most recent are kept (agents by heartbeat, items by update)
 * and the rest counted in `agents_left_out` / `items_left_out`.
 */
export function snapshotFrame(
  at: string,
  parts: SnapshotParts,
  limit = RELAY_FRAME_BYTES,
): { text: string; summary: SnapshotSummary } {
  let room = limit - 512; // the frame's other fields
  const pick = <T>(values: unknown[], schema: z.ZodType<T>, max: number, newer: (a: T, b: T) => number) => {
    const views = values.flatMap((v) => {
      const p = schema.safeParse(v);
      return p.success ? [p.data] : [];
    });
    const kept: string[] = [];
    for (const view of views.sort(newer)) {
      const json = JSON.stringify(view);
      const bytes = Buffer.byteLength(json) + 1;
      if (kept.length >= max || bytes > room) break;
      room -= bytes;
      kept.push(json);
    }
    return { json: kept, leftOut: values.length - kept.length };
  };
  const agents = pick(parts.agents, agentViewSchema, MAX_AGENTS, (a, b) => _desc(a.last_heartbeat, b.last_heartbeat));
  const items = pick(parts.items, itemViewSchema, MAX_ITEMS, (a, b) => _desc(a.updated_at, b.updated_at));
  const head = {
    type: "snapshot",
    at,
    timers: parts.timers,
    triggers: parts.triggers,
    agents_left_out: agents.leftOut,
    items_left_out: items.leftOut,
  };
  const text = `${JSON.stringify(head).slice(0, -1)},"agents":[${agents.json.join(",")}],"items":[${items.json.join(",")}]}`;
  const summary = {
    at,
    bytes: Buffer.byteLength(text),
    agents: agents.json.length,
    items: items.json.length,
    agents_left_out: agents.leftOut,
    items_left_out: items.leftOut,
  };
  return { text, summary };
}

/** The frame relaying `event`: an item without its body and notes; null when it would exceed the frame limit. */
export function eventFrame(event: BusEvent): string | null {
  const item = (event as { item?: unknown }).item;
  const relayed =
    item && typeof item === "object" ? { ...event, item: { ...item, body: undefined, notes: undefined } } : event;
  const text = JSON.stringify({ type: "event", event: relayed });
  return Buffer.byteLength(text) <= RELAY_FRAME_BYTES ? text : null;
}

// --- internal ---

function _desc(a: string | null, b: string | null): number {
  return (a ?? "") < (b ?? "") ? 1 : (a ?? "") > (b ?? "") ? -1 : 0;
}

/**
 * @module Which triggers an event matches. Triggers are held in memory by event type and reloaded only when
 * the table's version moves (an add, a cancel, a `once` that fired — from any process), so matching costs a
 * map lookup plus the predicates of that type's triggers.
 */
import { z } from "zod";
import type { Action } from "../../core/actions.ts";
import { eventDef } from "../../core/events.ts";
import type { Context } from "../../core/feature.ts";

const stageName = z.string().min(1).max(64);
const stages = z.union([stageName, z.array(stageName).min(1).max(8)]);

export const predicateSchema = z
  .strictObject({
    event: z
      .string()
      .default("transition")
      .refine((t) => eventDef(t) !== undefined, { message: "is not an event type" })
      .refine((t) => t !== "trigger_loop_halted", {
        message: "is trigger_loop_halted, which no trigger matches (it would feed the loop it reports)",
      })
      .describe("Event type"),
    item: z.string().min(1).max(100).optional().describe("Item id glob"),
    from: stages.optional().describe("Transition from this stage (or one of these)"),
    to: stages.optional().describe("Transition to this stage (or one of these)"),
    labels: z.array(z.string().min(1).max(64)).max(20).optional().describe("The item carries all these labels"),
    agent: z.string().min(1).max(100).optional().describe("Agent id glob"),
  })
  .superRefine(_checkStages);

export type Predicate = z.output<typeof predicateSchema>;

export interface Trigger {
  id: string;
  label: string | null;
  predicate: Predicate;
  action: Action;
  mode: "once" | "persistent";
  item?: Bun.Glob;
  agent?: Bun.Glob;
}

export interface TriggerIndex {
  /** The active triggers whose predicate holds for the event (labels looked up only when asked for). */
  match(event: Record<string, unknown>, labelsOf: (itemId: string) => Promise<string[] | null>): Promise<Trigger[]>;
  /** Marks the table changed (after a write here); other processes bump the stored version themselves. */
  bump(): void;
}

export function createTriggerIndex(ctx: Context): TriggerIndex {
  let version = -1;
  let byType = new Map<string, Trigger[]>();

  function load() {
    const now = _version(ctx);
    if (now === version) return;
    version = now;
    byType = new Map();
    const rows = ctx.db
      .query<{ id: string; label: string | null; predicate: string; action: string; mode: "once" | "persistent" }, []>(
        "SELECT id, label, predicate, action, mode FROM triggers WHERE state = 'active' ORDER BY created_at, id",
      )
      .all();
    for (const r of rows) {
      const predicate = JSON.parse(r.predicate) as Predicate;
      const t: Trigger = { id: r.id, label: r.label, predicate, action: JSON.parse(r.action), mode: r.mode };
      if (predicate.item) t.item = new Bun.Glob(predicate.item);
      if (predicate.agent) t.agent = new Bun.Glob(predicate.agent);
      byType.set(predicate.event, [...(byType.get(predicate.event) ?? []), t]);
    }
  }

  return {
    async match(event, labelsOf) {
      load();
      const out: Trigger[] = [];
      for (const t of byType.get(event.type as string) ?? []) {
        if (!_fieldsMatch(t, event)) continue;
        if (t.predicate.labels?.length) {
          const labels = typeof event.item_id === "string" ? await labelsOf(event.item_id) : null;
          if (!labels || !t.predicate.labels.every((l) => labels.includes(l))) continue;
        }
        out.push(t);
      }
      return out;
    },
    bump() {
      ctx.db.query("UPDATE trigger_meta SET version = version + 1").run();
    },
  };
}

// --- internal ---

function _version(ctx: Context): number {
  return ctx.db.query<{ version: number }, []>("SELECT version FROM trigger_meta").get()!.version;
}

function _fieldsMatch(t: Trigger, event: Record<string, unknown>): boolean {
  const p = t.predicate;
  if (t.item && !(typeof event.item_id === "string" && t.item.match(event.item_id))) return false;
  if (t.agent && !(typeof event.agent_id === "string" && t.agent.match(event.agent_id))) return false;
  if (p.from && !_oneOf(p.from, event.from)) return false;
  if (p.to && !_oneOf(p.to, event.to)) return false;
  return true;
}

function _oneOf(want: string | string[], got: unknown): boolean {
  return typeof got === "string" && (Array.isArray(want) ? want.includes(got) : want === got);
}

/** `from` and `to` name values of the event's own fields: a stage its feature declared, not a typo that never matches. */
function _checkStages(p: { event: string; from?: string | string[]; to?: string | string[] }, check: z.RefinementCtx) {
  const shape = eventDef(p.event)?.schema.shape;
  if (!shape) return;
  for (const field of ["from", "to"] as const) {
    const given = p[field];
    if (given === undefined) continue;
    const schema = shape[field] as z.ZodType | undefined;
    if (!schema) {
      check.addIssue({ code: "custom", path: [field], message: `is not a field of "${p.event}" events` });
      continue;
    }
    for (const value of [given].flat()) {
      if (!schema.safeParse(value).success)
        check.addIssue({
          code: "custom",
          path: [field],
          message: `${JSON.stringify(value)} is not a value of "${p.event}.${field}"`,
        });
    }
  }
}

/**
 * @module Feature `triggers`: when an event matches, run an action. Matched against every event of its type,
 * local or arrived by sync. A `once` trigger is retired durably before its action runs, so a crash or restart
 * the action causes never replays it. Chains are bounded in depth (8) and in width (`triggers.max_actions_per_event`
 * actions per originating event, see chain.ts); a chain at either limit is reported once with `trigger_loop_halted`,
 * and events at a limit — and `trigger_loop_halted` itself — match no trigger. Reconcile replays nothing from history.
 */
import { z } from "zod";
import { actionFields, actionFrom, isChainId, newChainId } from "../../core/actions.ts";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { BusEvent, EventCause } from "../../core/events.ts";
import { type Context, defineFeature, defineOp } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import { type ChainBudget, createChainBudget, type HaltReason } from "./chain.ts";
import { triggersContract } from "./contract.ts";
import { createTriggerIndex, predicateSchema, type Trigger, type TriggerIndex } from "./match.ts";

/** Events at this depth of a trigger chain fire no further triggers. */
export const MAX_DEPTH = 8;

declare module "../../core/feature.ts" {
  interface Services {
    triggers: TriggerIndex;
    triggerChains: ChainBudget;
  }
}

const triggerId = z.string().regex(/^tg[a-z2-7]{8}$/, 'must look like "tg" and 8 characters of a-z, 2-7');

const triggerOps = {
  "trigger.add": defineOp({
    writes: true,
    http: { method: "POST", path: "/api/triggers", status: 201 },
    description: 'When an event matches, run an action; "$event.<field>" in args is the event\'s field',
    input: z.strictObject({
      on: predicateSchema
        .default({ event: "transition" })
        .describe("What to match, as JSON: {event?, item?, from?, to?, labels?, agent?}"),
      mode: z.enum(["once", "persistent"]).describe("once: removed before its first action runs"),
      label: z.string().max(200).optional(),
      ...actionFields,
    }),
    run(ctx, input, call) {
      const action = actionFrom(input, ctx.ops, { placeholders: true });
      const id = `tg${randomBase32(8)}`;
      ctx.db
        .query(
          "INSERT INTO triggers (id, label, predicate, action, mode, state, created_at) VALUES (?, ?, ?, ?, ?, 'active', ?)",
        )
        .run(
          id,
          input.label ?? null,
          JSON.stringify(input.on),
          JSON.stringify(action),
          input.mode,
          iso(ctx.clock.now()),
        );
      ctx.services.triggers.bump();
      // made by a trigger's action, the event stays in that chain (a trigger on trigger_added would loop otherwise)
      ctx.bus.publish(
        "trigger_added",
        { trigger_id: id, label: input.label ?? null, event: input.on.event },
        { cause: call.cause },
      );
      return { id, label: input.label ?? null, on: input.on, mode: input.mode, action };
    },
  }),
  "trigger.list": defineOp({
    writes: false,
    http: { method: "GET", path: "/api/triggers" },
    description: "Triggers",
    input: z.strictObject({ all: z.boolean().default(false).describe("Also fired and cancelled ones") }),
    run(ctx, input) {
      return ctx.db
        .query<Record<string, unknown> & { predicate: string; action: string }, []>(
          `SELECT * FROM triggers ${input.all ? "" : "WHERE state = 'active'"} ORDER BY created_at, id`,
        )
        .all()
        .map(({ predicate, action, ...rest }) => ({ ...rest, on: JSON.parse(predicate), action: JSON.parse(action) }));
    },
    view: { columns: ["id", "label", "mode", "on", "action", "fired_count", "state"] },
  }),
  "trigger.cancel": defineOp({
    writes: true,
    destructive: true,
    http: { method: "DELETE", path: "/api/triggers/:id" },
    description: "Cancel a trigger",
    input: z.strictObject({ id: triggerId }),
    run(ctx, { id }, call) {
      const changed = ctx.db
        .query("UPDATE triggers SET state = 'cancelled' WHERE id = ? AND state = 'active'")
        .run(id).changes;
      if (!changed) throw new DroverError("not_found", `Cannot cancel trigger "${id}": no active trigger has that id`);
      ctx.services.triggers.bump();
      ctx.bus.publish("trigger_cancelled", { trigger_id: id }, { cause: call.cause });
      return { id, state: "cancelled" };
    },
  }),
};

declare module "../../core/feature.ts" {
  interface OpMap {
    "trigger.add": (typeof triggerOps)["trigger.add"];
    "trigger.list": (typeof triggerOps)["trigger.list"];
    "trigger.cancel": (typeof triggerOps)["trigger.cancel"];
  }
}

export default defineFeature({
  name: "triggers",
  ...triggersContract,
  localOnly: ["triggers"],
  migrations: [
    `CREATE TABLE triggers (id TEXT PRIMARY KEY, label TEXT, predicate TEXT NOT NULL, action TEXT NOT NULL, mode TEXT NOT NULL,
       state TEXT NOT NULL, created_at TEXT NOT NULL, fired_count INTEGER NOT NULL DEFAULT 0, last_fired_at TEXT);
     CREATE TABLE trigger_meta (version INTEGER NOT NULL);
     INSERT INTO trigger_meta VALUES (0);`,
  ],
  setup(ctx) {
    ctx.services.triggers = createTriggerIndex(ctx);
    ctx.services.triggerChains = createChainBudget(ctx.config.triggers.max_actions_per_event);
  },
  ops: triggerOps,
  on: {
    "*": (ctx, event) => onEvent(ctx, event),
  },
});

/** Fires every trigger the event matches, within the chain's depth and width. */
async function onEvent(ctx: Context, event: BusEvent) {
  if (event.type === "trigger_loop_halted") return; // a trigger on it would restart the loop it reports
  const { depth, chain: known } = _causeOf(event);
  const chains = ctx.services.triggerChains;
  const limit = (chain?: string): HaltReason | null =>
    depth >= MAX_DEPTH ? "depth" : chain && chains.spent(chain) ? "budget" : null;
  const atLimit = limit(known);
  if (known && atLimit && chains.reported(known, atLimit)) return; // halted and said so: nothing to match
  const fields = event as unknown as Record<string, unknown>;
  const matched = await ctx.services.triggers.match(fields, async (id) => {
    const item = await ctx.ops.call("item.get", { id }).catch(() => null);
    return item?.labels ?? null;
  });
  if (!matched.length) return;
  const chain = known ?? newChainId();
  const itemId = typeof fields.item_id === "string" ? fields.item_id : null;
  for (const t of matched) {
    const reason = limit(chain);
    if (reason) {
      if (chains.report(chain, reason)) {
        const halted = { trigger_id: t.id, event_type: event.type, item_id: itemId, depth, reason };
        ctx.bus.publish("trigger_loop_halted", halted, { cause: { depth, chain } });
      }
      continue;
    }
    if (!_retire(ctx, t)) continue; // a `once` trigger someone else fired first
    chains.spend(chain);
    const cause = { trigger_id: t.id, depth: depth + 1, chain };
    // not awaited: the next event waits for no action (tracked, so waiting for the actions waits for this too)
    ctx.services.actions.track(_fire(ctx, t, { event, itemId, cause }));
  }
}

/** Runs the trigger's action and says how it went. */
async function _fire(ctx: Context, t: Trigger, fired: { event: BusEvent; itemId: string | null; cause: EventCause }) {
  const { event, itemId, cause } = fired;
  const outcome = await ctx.services.actions.run(
    t.action,
    { event: event as unknown as Record<string, unknown> },
    cause,
  );
  ctx.bus.publish(
    "trigger_fired",
    {
      trigger_id: t.id,
      event_type: event.type,
      item_id: itemId,
      result: outcome.result,
      ...(outcome.error ? { error: outcome.error } : {}),
    },
    { cause },
  );
}

/**
 * The event's depth and chain. A cause can come from the hub, written by another machine: a depth that is not
 * a count is taken as the limit, a chain that is not one of ours as none.
 */
function _causeOf(event: BusEvent): { depth: number; chain?: string } {
  const cause: Partial<EventCause> | undefined =
    event.cause && typeof event.cause === "object" ? event.cause : undefined;
  if (!cause) return { depth: 0 };
  const depth = Number.isSafeInteger(cause.depth) && cause.depth! >= 0 ? cause.depth! : MAX_DEPTH;
  return isChainId(cause.chain) ? { depth, chain: cause.chain } : { depth };
}

/** Counts the firing; a `once` trigger is removed durably here, before its action runs. False: already gone. */
function _retire(ctx: Context, t: Trigger): boolean {
  const now = iso(ctx.clock.now());
  const state = t.mode === "once" ? "fired" : "active";
  const changed = ctx.db
    .query(
      "UPDATE triggers SET state = ?, fired_count = fired_count + 1, last_fired_at = ? WHERE id = ? AND state = 'active'",
    )
    .run(state, now, t.id).changes;
  if (t.mode === "once") ctx.services.triggers.bump();
  return changed > 0;
}

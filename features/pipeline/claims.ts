/**
 * @module Claims: leases with fencing tokens. `item.claim`, `item.next` (the pull model: the best ready item,
 * optionally only in some stages or with some labels, claimed and moved into coding in one op), `item.renew`,
 * `item.release`, `agent.takeover`, and the expiry of lapsed leases. A grant waits for its push when there is a
 * remote (`pipeline.claim_confirm_secs`).
 */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { Context } from "../../core/feature.ts";
import { agentIdSchema, itemIdSchema, labelSchema } from "../../core/ids.ts";
import type { HubTx } from "../../hub/apply.ts";
import { defineHubOp, defineMutation } from "../../hub/op.ts";
import { claimHeld, type Item, mustItem, stageSchema, writeItem } from "./item.ts";
import { checkFence, fenceSchema, moveItem, unmetDeps } from "./moves.ts";
import { READY_STAGES, STAGES, type Stage, TERMINAL_STAGES } from "./stages.ts";

const ttl = z
  .number()
  .int()
  .min(1)
  .max(7 * 86_400)
  .describe("Claim lifetime in seconds");
/** The lease length a caller left out is this machine's `pipeline.claim_ttl_secs`, recorded with the op. */
const withTtl = <T extends { ttl_secs?: number }>(ctx: Context, input: T) => ({
  ...input,
  ttl_secs: input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs,
});
const confirmSecs = (ctx: Context) => ctx.config.pipeline.claim_confirm_secs;

export const itemClaim = defineHubOp({
  description: "Claim an item for an agent (a lease with a fencing token)",
  input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
  args: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl }),
  record: withTtl,
  http: { method: "POST", path: "/api/items/:id/claim" },
  apply: (args, tx, ctx) => claimItem(ctx, tx, mustItem(tx, args.id, "claim"), args),
  confirmSecs,
  answer: (_ctx, { result: item, confirmed }) => ({ claim: item.claim!, fence: item.fence, confirmed }),
});

/** What `item.next` may take (a runner takes only items in its stages and with its labels). */
const nextFilters = {
  stages: z
    .array(stageSchema)
    .min(1)
    .max(STAGES.length)
    .optional()
    .describe("Only items ready in one of these stages (a backlog item is taken into coding)"),
  labels: z.array(labelSchema).max(50).optional().describe("Only items carrying all of these labels"),
};

export const itemNext = defineHubOp({
  description: "Claim the best ready item for an agent and move it into coding, atomically",
  input: z.strictObject({ agent: agentIdSchema, ttl_secs: ttl.optional(), ...nextFilters }),
  // the item the first run picks (or null: nothing was ready) is recorded, so a replay claims that one or fails;
  // the filters are recorded too, so a replay refuses an item that no longer matches them
  args: z.strictObject({
    agent: agentIdSchema,
    ttl_secs: ttl,
    ...nextFilters,
    id: itemIdSchema.nullable().optional(),
  }),
  record: withTtl,
  http: { method: "POST", path: "/api/next" },
  apply(args, tx, ctx): Item | null {
    if (args.id === null) return null;
    const ready = args.id === undefined ? _nextReady(ctx, tx, args) : _stillReady(tx, args.id, args);
    args.id = ready?.id ?? null;
    if (!ready) return null;
    const claimed = claimItem(ctx, tx, ready, args);
    return claimed.stage === "backlog" ? moveItem(tx, claimed, "coding") : claimed;
  },
  confirmSecs,
  answer: (_ctx, { result: item, confirmed }) => ({ item, fence: item?.fence ?? null, confirmed }),
  view: { empty: (r) => (r.item ? undefined : "Nothing is ready: no unclaimed item with its dependencies met") },
});

export const itemRenew = defineHubOp({
  description: "Extend the claim an agent holds",
  input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
  args: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl }),
  record: withTtl,
  apply(args, tx): Item {
    const item = mustItem(tx, args.id, "renew");
    if (item.claim?.agent_id !== args.agent)
      throw new DroverError("not_holder", `Cannot renew item "${item.id}": not held by "${args.agent}"`);
    const claim = { ...item.claim, renewed_at: iso(tx.now), expires_at: iso(tx.now + args.ttl_secs * 1000) };
    return writeItem(tx, { ...item, claim, updated_at: iso(tx.now) });
  },
});

export const itemRelease = defineHubOp({
  description: "Give up a claim",
  input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, fence: fenceSchema }),
  http: { method: "POST", path: "/api/items/:id/release" },
  apply(args, tx): Item {
    const item = mustItem(tx, args.id, "release");
    checkFence(item, args.fence, "release");
    if (!item.claim || item.claim.agent_id !== args.agent || item.claim.fence !== args.fence) {
      throw new DroverError(
        "not_holder",
        `Cannot release item "${item.id}": not held by "${args.agent}" with fence ${args.fence}`,
      );
    }
    return writeItem(tx, { ...item, claim: null, updated_at: iso(tx.now) });
  },
});

export const agentTakeover = defineHubOp({
  description: "Release every claim an agent holds (the watchdog does this for stale agents)",
  // it takes work away from another agent
  destructive: true,
  input: z.strictObject({ agent: agentIdSchema }),
  // the claims this machine saw the agent hold are recorded: a replay releases those, if the agent still holds them
  args: z.strictObject({ agent: agentIdSchema, items: z.array(itemIdSchema).max(10_000) }),
  record(ctx, input) {
    const held = ctx.db.query<{ id: string }, [string]>("SELECT id FROM items WHERE holder = ?").all(input.agent);
    return { ...input, items: held.map((h) => h.id) };
  },
  apply(args, tx) {
    const released: string[] = [];
    for (const id of args.items) {
      const item = mustItem(tx, id, "release");
      if (item.claim?.agent_id !== args.agent) continue;
      writeItem(tx, { ...item, claim: null, updated_at: iso(tx.now) });
      released.push(id);
    }
    return { released };
  },
});

/** Drops a claim whose lease ran out (the daemon's tick; `claim_released` with reason `expired`). */
export const expireClaim = defineMutation("item.expire", {
  args: z.strictObject({ id: itemIdSchema }),
  apply(args, tx) {
    const item = mustItem(tx, args.id, "expire");
    if (item.claim && Date.parse(item.claim.expires_at) <= tx.now)
      writeItem(tx, { ...item, claim: null, updated_at: iso(tx.now) });
  },
});

/** Grants (or, for the holder, extends) a claim; refuses when another agent holds it. */
export function claimItem(ctx: Context, tx: HubTx, item: Item, options: { agent: string; ttl_secs: number }): Item {
  if (TERMINAL_STAGES.has(item.stage))
    throw new DroverError("conflict", `Cannot claim item "${item.id}": it is ${item.stage}`);
  const expires_at = iso(tx.now + options.ttl_secs * 1000);
  if (item.claim && claimHeld(item, tx.now)) {
    if (item.claim.agent_id !== options.agent) {
      throw new DroverError("claimed", `Cannot claim item "${item.id}": held by "${item.claim.agent_id}"`, {
        details: { holder: item.claim },
      });
    }
    return writeItem(tx, {
      ...item,
      claim: { ...item.claim, renewed_at: iso(tx.now), expires_at },
      updated_at: iso(tx.now),
    });
  }
  const fence = item.fence + 1;
  const claim = { agent_id: options.agent, machine_id: ctx.machineId, claimed_at: iso(tx.now), expires_at, fence };
  return writeItem(tx, { ...item, claim, fence, updated_at: iso(tx.now) });
}

// --- internal ---

interface NextFilters {
  stages?: Stage[];
  labels?: string[];
}

/** The best ready item: in backlog, coding, qa or merge, unclaimed or expired, dependencies met, filters matched. */
function _nextReady(ctx: Context, tx: HubTx, filters: NextFilters): Item | null {
  const stages = [...READY_STAGES].filter((s) => _stageMatches(s, filters.stages));
  if (!stages.length) return null;
  const labels = filters.labels ?? [];
  const rows = ctx.db
    .query<{ id: string }, Array<string | number>>(
      `SELECT id FROM items WHERE stage IN (${stages.map(() => "?").join(", ")}) AND (holder IS NULL OR expires_at <= ?)
       ${labels.map(() => "AND EXISTS (SELECT 1 FROM json_each(labels) WHERE value = ?)").join(" ")}
       ORDER BY priority, created_at, id`,
    )
    .all(...stages, tx.now, ...labels);
  for (const { id } of rows) {
    const item = mustItem(tx, id, "read");
    if (_isReady(tx, item, filters)) return item;
  }
  return null;
}

function _isReady(tx: HubTx, item: Item, filters: NextFilters): boolean {
  return (
    READY_STAGES.has(item.stage) &&
    _stageMatches(item.stage, filters.stages) &&
    (filters.labels ?? []).every((l) => item.labels.includes(l)) &&
    !claimHeld(item, tx.now) &&
    unmetDeps(tx, item).length === 0
  );
}

/** A stage is taken when it is asked for; a backlog item also when coding is (item.next takes it into coding). */
function _stageMatches(stage: Stage, stages: Stage[] | undefined): boolean {
  return !stages || stages.includes(stage) || (stage === "backlog" && stages.includes("coding"));
}

function _stillReady(tx: HubTx, id: string, filters: NextFilters): Item {
  const item = mustItem(tx, id, "claim");
  if (!_isReady(tx, item, filters)) {
    const why = claimHeld(item, tx.now)
      ? `held by "${item.claim!.agent_id}"`
      : _isReady(tx, item, {})
        ? `it no longer matches the stages or labels asked for (${item.stage})`
        : `it is no longer ready (${item.stage})`;
    throw new DroverError("claimed", `Cannot claim item "${id}": ${why}`);
  }
  return item;
}

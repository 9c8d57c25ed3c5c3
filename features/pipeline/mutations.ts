/**
 * @module What each pipeline op does to the hub, as replayable mutations: the effect depends only on the
 * recorded args and the files read, so sync can replay an op on another machine's tree and get either the
 * same effect or a clear refusal. Choices made on the first run (a new id, the item `item.next` picked, the
 * claims a takeover found) are written back into the args.
 */
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { Context } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import type { Apply, HubTx } from "../sync/apply.ts";
import { claimHeld, itemPath, itemSchema, type Item } from "./item.ts";
import { checkMove, MET_STAGES, READY_STAGES, TERMINAL_STAGES, UNCLAIMED_STAGES, type Stage } from "./stages.ts";
import { addUsage } from "./usage.ts";

const READY_SQL = [...READY_STAGES].map((s) => `'${s}'`).join(", ");

/** The pipeline's mutations by op name (registered with the hub at setup). */
export function pipelineMutations(ctx: Context): Record<string, Apply> {
  return {
    "item.create"(args, tx) {
      const a = args as { title: string; body: string; labels: string[]; priority: number; depends_on: string[]; stage: Stage; agent?: string; id?: string };
      for (const dep of a.depends_on) mustItem(tx, dep, "depend on");
      if (a.id && tx.read(itemPath(a.id)) !== null) throw new DroverError("conflict", `Cannot create item "${a.id}": the id is taken`);
      const id = (args.id = a.id ?? _newId(tx));
      const at = iso(tx.now);
      const item: Item = {
        id,
        title: a.title,
        body: a.body,
        labels: [...new Set(a.labels)],
        priority: a.priority,
        stage: a.stage,
        depends_on: [...new Set(a.depends_on)],
        claim: null,
        fence: 0,
        created_at: at,
        created_by: a.agent ?? ctx.machineId,
        updated_at: at,
      };
      tx.write(itemPath(id), item);
      return item;
    },
    "item.move"(args, tx) {
      const a = args as { id: string; to: Stage; agent?: string; fence?: number; force?: boolean };
      const item = mustItem(tx, a.id, "move");
      _checkFence(item, a.fence, "move");
      if (a.agent && item.claim && claimHeld(item, tx.now) && item.claim.agent_id !== a.agent) {
        throw new DroverError("claimed", `Cannot move item "${item.id}": held by "${item.claim.agent_id}"`, { details: { holder: item.claim } });
      }
      checkMove(item.id, item.stage, a.to);
      if (a.to === "coding" && !a.force) _checkDeps(tx, item);
      return moveItem(tx, item, a.to);
    },
    "item.claim"(args, tx) {
      const a = args as { id: string; agent: string; ttl_secs: number };
      return claimItem(ctx, tx, mustItem(tx, a.id, "claim"), { agent: a.agent, ttlSecs: a.ttl_secs });
    },
    "item.release"(args, tx) {
      const a = args as { id: string; agent: string; fence: number };
      const item = mustItem(tx, a.id, "release");
      _checkFence(item, a.fence, "release");
      if (!item.claim || item.claim.agent_id !== a.agent || item.claim.fence !== a.fence) {
        throw new DroverError("not_holder", `Cannot release item "${item.id}": not held by "${a.agent}" with fence ${a.fence}`);
      }
      return _write(tx, { ...item, claim: null, updated_at: iso(tx.now) });
    },
    "item.renew"(args, tx) {
      const a = args as { id: string; agent: string; ttl_secs: number };
      const item = mustItem(tx, a.id, "renew");
      if (item.claim?.agent_id !== a.agent) throw new DroverError("not_holder", `Cannot renew item "${item.id}": not held by "${a.agent}"`);
      const claim = { ...item.claim, renewed_at: iso(tx.now), expires_at: iso(tx.now + a.ttl_secs * 1000) };
      return _write(tx, { ...item, claim, updated_at: iso(tx.now) });
    },
    "agent.takeover"(args, tx) {
      const a = args as { agent: string; items: string[] };
      const released: string[] = [];
      for (const id of a.items) {
        const item = mustItem(tx, id, "release");
        if (item.claim?.agent_id !== a.agent) continue;
        _write(tx, { ...item, claim: null, updated_at: iso(tx.now) });
        released.push(id);
      }
      return { released };
    },
    "item.next"(args, tx) {
      const a = args as { agent: string; ttl_secs: number; id?: string | null };
      if (a.id === null) return null; // the first run found nothing ready: so does its replay
      const ready = a.id === undefined ? nextReady(ctx, tx) : _stillReady(tx, a.id);
      args.id = ready?.id ?? null;
      if (!ready) return null;
      const claimed = claimItem(ctx, tx, ready, { agent: a.agent, ttlSecs: a.ttl_secs });
      return claimed.stage === "backlog" ? moveItem(tx, claimed, "coding") : claimed;
    },
    "item.expire"(args, tx) {
      const item = mustItem(tx, args.id as string, "expire");
      if (item.claim && Date.parse(item.claim.expires_at) <= tx.now) _write(tx, { ...item, claim: null, updated_at: iso(tx.now) });
    },
    "item.archive"(args, tx) {
      const item = mustItem(tx, args.id as string, "archive");
      if (item.stage === "done" && item.updated_at <= (args.cutoff as string)) moveItem(tx, item, "archived");
    },
    "usage.report"(args, tx) {
      const a = args as { id: string; input_tokens: number; output_tokens: number; cache_read_tokens: number; cost_usd: number };
      const current = mustItem(tx, a.id, "report usage on");
      return _write(tx, { ...current, usage: addUsage(current.usage, a), updated_at: iso(tx.now) });
    },
  };
}

/** Reads an item through the transaction or throws `not_found`. */
function mustItem(tx: HubTx, id: string, verb: string): Item {
  const raw = tx.read(itemPath(id));
  if (raw === null) throw new DroverError("not_found", `Cannot ${verb} item "${id}": no such item`);
  const parsed = itemSchema.safeParse(raw);
  if (!parsed.success) throw new DroverError("conflict", `Cannot ${verb} item "${id}": its hub file is invalid`);
  return parsed.data;
}

/** Writes the item in its new stage; entering an unclaimed stage drops the claim. */
function moveItem(tx: HubTx, item: Item, to: Stage): Item {
  const next: Item = { ...item, stage: to, updated_at: iso(tx.now) };
  if (UNCLAIMED_STAGES.has(to)) next.claim = null;
  return _write(tx, next);
}

/** Grants (or, for the holder, extends) a claim; refuses when another agent holds it. */
function claimItem(ctx: Context, tx: HubTx, item: Item, options: { agent: string; ttlSecs: number }): Item {
  if (TERMINAL_STAGES.has(item.stage)) {
    throw new DroverError("conflict", `Cannot claim item "${item.id}": it is ${item.stage}`);
  }
  const expires_at = iso(tx.now + options.ttlSecs * 1000);
  if (item.claim && claimHeld(item, tx.now)) {
    if (item.claim.agent_id !== options.agent) {
      throw new DroverError("claimed", `Cannot claim item "${item.id}": held by "${item.claim.agent_id}"`, { details: { holder: item.claim } });
    }
    return _write(tx, { ...item, claim: { ...item.claim, renewed_at: iso(tx.now), expires_at }, updated_at: iso(tx.now) });
  }
  const fence = item.fence + 1;
  const claim = { agent_id: options.agent, machine_id: ctx.machineId, claimed_at: iso(tx.now), expires_at, fence };
  return _write(tx, { ...item, claim, fence, updated_at: iso(tx.now) });
}

/** The best ready item: in backlog, coding, qa or merge, unclaimed or expired, dependencies met. */
function nextReady(ctx: Context, tx: HubTx): Item | null {
  const rows = ctx.db
    .query<{ id: string }, [number]>(
      `SELECT id FROM items WHERE stage IN (${READY_SQL}) AND (holder IS NULL OR expires_at <= ?)
       ORDER BY priority, created_at, id`,
    )
    .all(tx.now);
  for (const { id } of rows) {
    const item = mustItem(tx, id, "read");
    if (_isReady(tx, item)) return item;
  }
  return null;
}

// --- internal ---

function _write(tx: HubTx, item: Item): Item {
  tx.write(itemPath(item.id), item);
  return item;
}

function _isReady(tx: HubTx, item: Item): boolean {
  return READY_STAGES.has(item.stage) && !claimHeld(item, tx.now) && _unmetDeps(tx, item).length === 0;
}

function _stillReady(tx: HubTx, id: string): Item {
  const item = mustItem(tx, id, "claim");
  if (!_isReady(tx, item)) {
    const why = claimHeld(item, tx.now) ? `held by "${item.claim!.agent_id}"` : `it is no longer ready (${item.stage})`;
    throw new DroverError("claimed", `Cannot claim item "${id}": ${why}`);
  }
  return item;
}

function _newId(tx: HubTx): string {
  for (let length = 5; ; length++) {
    const id = randomBase32(length);
    if (tx.read(itemPath(id)) === null) return id;
  }
}

function _checkFence(item: Item, given: number | undefined, verb: string) {
  if (given !== undefined && given < item.fence) {
    throw new DroverError("stale_fence", `Cannot ${verb} item "${item.id}": fence ${given} is older than the item's ${item.fence}`, {
      details: { given, current: item.fence },
    });
  }
}

function _unmetDeps(tx: HubTx, item: Item): string[] {
  return item.depends_on.filter((dep) => {
    const raw = tx.read(itemPath(dep)) as Item | null;
    return !raw || !MET_STAGES.has(raw.stage);
  });
}

function _checkDeps(tx: HubTx, item: Item) {
  const unmet = _unmetDeps(tx, item);
  if (unmet.length) {
    throw new DroverError(
      "blocked_by_deps",
      `Cannot move item "${item.id}" into coding: waiting for ${unmet.map((d) => `"${d}"`).join(", ")}`,
      { details: { unmet } },
    );
  }
}

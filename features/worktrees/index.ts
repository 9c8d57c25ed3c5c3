/**
 * @module Feature `worktrees`: a git worktree of the project per item in coding whose claim is held on this
 * machine (`.drover/worktrees/<id>`, branch `drover/item/<id>`), removed when the item ends unless that would
 * destroy work — then it is kept and reported. Only worktrees drover made (its table) are ever touched.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { type Context, defineFeature, defineOp, type OpResult } from "../../core/feature.ts";
import { baseBranch } from "../../core/git.ts";
import { agentIdSchema, itemBranch, itemIdSchema } from "../../core/ids.ts";
import { worktreesContract } from "./contract.ts";
import { addWorktree, keepReason, removeWorktree } from "./git.ts";
import { carryIntegration } from "./integration.ts";

type Item = OpResult<"item.get">;

/** Stages in which an item's work is over (SPEC §5): its worktree goes, unless that would destroy work. */
const ENDED: ReadonlySet<string> = new Set(["done", "abandoned", "archived"]);

interface Row {
  item_id: string;
  path: string;
  branch: string;
  state: "active" | "kept" | "removed";
  reason: string | null;
}

declare module "../../core/feature.ts" {
  interface OpMap {
    "item.start": typeof itemStart;
  }
}

const itemStart = defineOp({
  writes: true,
  description: "Begin an item: claim it, move it into coding, and make its worktree; answers with the path",
  input: z.strictObject({
    id: itemIdSchema,
    agent: agentIdSchema,
    ttl_secs: z.number().int().min(1).max(604_800).optional(),
  }),
  async run(ctx, input) {
    const claim = await ctx.ops.call("item.claim", { id: input.id, agent: input.agent, ttl_secs: input.ttl_secs });
    let item = await ctx.ops.call("item.get", { id: input.id });
    if (item.stage !== "coding")
      item = await ctx.ops.call("item.move", { id: input.id, to: "coding", agent: input.agent, fence: claim.fence });
    const row = await ensureWorktree(ctx, item);
    return { item, fence: claim.fence, path: row?.path ?? null, branch: row?.branch ?? null };
  },
  view: {
    flags: {
      "path-only": { description: 'Print only the worktree\'s path (for cd "$(…)")', render: (r) => r.path ?? "" },
    },
  },
});

export default defineFeature({
  name: "worktrees",
  ...worktreesContract,
  localOnly: ["the record of worktrees drover made (they are kept, not removed, from now on)"],
  // the branch whose history decides whether a worktree's commits are merged, hence whether they may be deleted
  trust: { "pipeline.base_branch": (v) => v !== "" },
  migrations: [
    `CREATE TABLE worktrees (item_id TEXT PRIMARY KEY, path TEXT NOT NULL, branch TEXT NOT NULL, state TEXT NOT NULL,
       reason TEXT, created_at TEXT NOT NULL)`,
  ],
  ops: {
    "item.start": itemStart,
  },
  on: {
    async transition(ctx, e) {
      if (e.to !== "coding" && !ENDED.has(e.to)) return;
      const item = await ctx.ops.call("item.get", { id: e.item_id }).catch(() => null);
      if (!item) return;
      try {
        if (item.stage === "coding") await ensureWorktree(ctx, item);
        else await cleanUp(ctx, item.id);
      } catch (err) {
        ctx.log.warn(`Worktree of item "${item.id}": ${(err as Error).message}`);
      }
    },
  },
  async reconcile(ctx) {
    let changed = 0;
    const coding = await ctx.ops.call("items.list", { stage: "coding" });
    for (const item of coding) {
      try {
        if ((await ensureWorktree(ctx, item))?.created) changed++;
      } catch (err) {
        ctx.log.warnOnce(
          `worktree:${item.id}:${(err as Error).message}`,
          `Worktree of item "${item.id}": ${(err as Error).message}`,
        );
      }
    }
    // the other worktrees go once their item has ended; a kept one costs its git checks again each round (its
    // work may have been merged or pushed since)
    const inCoding = new Set(coding.map((item) => item.id));
    const open = ctx.db
      .query<{ item_id: string }, []>("SELECT item_id FROM worktrees WHERE state IN ('active', 'kept')")
      .all()
      .filter((row) => !inCoding.has(row.item_id));
    for (const { item_id } of open) {
      const item = await ctx.ops.call("item.get", { id: item_id }).catch(() => null);
      if (item && ENDED.has(item.stage) && (await cleanUp(ctx, item_id))) changed++;
    }
    return { changed };
  },
});

/**
 * Makes the item's worktree if it is in coding, held on this machine, and has none; answers where it is and
 * whether this call made it. One item's worktree work runs one call at a time in this process.
 */
function ensureWorktree(ctx: Context, item: Item): Promise<{ path: string; branch: string; created: boolean } | null> {
  return _serial(ctx, item.id, async () => {
    if (!ctx.config.pipeline.worktrees || item.stage !== "coding" || item.claim?.machine_id !== ctx.machineId)
      return null;
    const row = _row(ctx, item.id);
    const path = join(ctx.paths.worktrees, item.id);
    const branch = itemBranch(item.id);
    if (row?.state === "active" && existsSync(path)) return { path, branch, created: false };
    if (!row && existsSync(path))
      throw new DroverError(
        "conflict",
        `Cannot make the worktree "${path}": the folder exists and drover did not make it`,
      );
    await addWorktree(ctx.paths.root, path, branch, _base(ctx));
    // recorded at once: whatever fails after, the folder is drover's (else every later call would refuse it)
    ctx.db
      .query(
        "INSERT OR REPLACE INTO worktrees (item_id, path, branch, state, reason, created_at) VALUES (?, ?, ?, 'active', NULL, ?)",
      )
      .run(item.id, path, branch, iso(ctx.clock.now()));
    try {
      await carryIntegration(ctx.paths.root, path);
    } catch (err) {
      // the worktree works without the hooks (an agent's session there reports nothing to drover)
      ctx.log.warn(`Cannot carry the hooks into "${path}": ${(err as Error).message}`);
    }
    ctx.bus.publish("worktree_created", { item_id: item.id, path, branch });
    return { path, branch, created: true };
  });
}

/** Removes the worktree of an ended item, or keeps it (once reported) when it holds work; true if it changed. */
function cleanUp(ctx: Context, itemId: string): Promise<boolean> {
  return _serial(ctx, itemId, () => _cleanUp(ctx, itemId));
}

// --- internal ---

async function _cleanUp(ctx: Context, itemId: string): Promise<boolean> {
  const row = _row(ctx, itemId);
  if (!row || row.state === "removed") return false;
  if (!existsSync(row.path)) {
    ctx.db.query("UPDATE worktrees SET state = 'removed' WHERE item_id = ?").run(itemId);
    return true;
  }
  const reason = await keepReason(ctx.paths.root, row.path, row.branch, _base(ctx));
  if (reason) {
    if (row.state === "kept" && row.reason === reason) return false;
    ctx.db.query("UPDATE worktrees SET state = 'kept', reason = ? WHERE item_id = ?").run(reason, itemId);
    ctx.bus.publish("worktree_kept", { item_id: itemId, path: row.path, reason });
    return true;
  }
  await removeWorktree(ctx.paths.root, row.path, row.branch);
  ctx.db.query("UPDATE worktrees SET state = 'removed', reason = NULL WHERE item_id = ?").run(itemId);
  ctx.bus.publish("worktree_removed", { item_id: itemId, path: row.path });
  return true;
}

function _base(ctx: Context): string {
  return baseBranch(ctx.paths.root, { key: "pipeline.base_branch", value: ctx.config.pipeline.base_branch });
}

function _row(ctx: Context, itemId: string): Row | null {
  return ctx.db.query<Row, [string]>("SELECT * FROM worktrees WHERE item_id = ?").get(itemId);
}

/** Per runtime, the tail of each item's chain of worktree work. */
const chains = new WeakMap<Context, Map<string, Promise<unknown>>>();

function _serial<R>(ctx: Context, itemId: string, fn: () => Promise<R>): Promise<R> {
  let byItem = chains.get(ctx);
  if (!byItem) chains.set(ctx, (byItem = new Map()));
  const run = (byItem.get(itemId) ?? Promise.resolve()).catch(() => undefined).then(fn);
  byItem.set(itemId, run);
  const done = () => void (byItem.get(itemId) === run && byItem.delete(itemId));
  run.then(done, done);
  return run;
}

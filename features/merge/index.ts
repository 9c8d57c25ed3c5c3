/**
 * @module Feature `merge` (SPEC §14): an item that reaches `merge` is landed on the base branch by the machine
 * that holds its branch — in a scratch worktree, checked, the base moved by compare-and-swap — and moves to `done`
 * with `merged: {sha, base, strategy, at}`; a conflict or a red check sends it back to coding with a note. The
 * check is a command from the shared config, and pushing publishes with this machine's credentials: both take
 * effect only once trusted (§12).
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { type Context, defineFeature, defineOp } from "../../core/feature.ts";
import { commitOf } from "../../core/git.ts";
import { itemBranch, itemIdSchema } from "../../core/ids.ts";
import { MERGE_TRUST, mergeContract } from "./contract.ts";
import { createMergeQueue, type MergeQueue, queueMigrations } from "./queue.ts";

declare module "../../core/feature.ts" {
  interface Services {
    merge: MergeQueue;
  }
  interface OpMap {
    "item.merge": typeof itemMerge;
    "merge.status": typeof mergeStatus;
  }
}

const itemMerge = defineOp({
  writes: true,
  idempotent: true,
  description: "Queue an item in merge for landing on the base branch (automatic with merge.mode = auto)",
  http: { method: "POST", path: "/api/items/:id/merge" },
  input: z.strictObject({ id: itemIdSchema }),
  async run(ctx, input) {
    const item = await ctx.ops.call("item.get", { id: input.id });
    if (item.stage !== "merge")
      throw new DroverError("illegal_transition", `Cannot merge item "${item.id}": it is in ${item.stage}, not merge`);
    if (!(await _holdsBranch(ctx, item.id)))
      throw new DroverError("conflict", `Cannot merge item "${item.id}": its branch is not on this machine`);
    const queued = ctx.services.merge.enqueue(item.id);
    void ctx.services.merge.drain();
    return { id: item.id, queued, queue: ctx.services.merge.rows().map((r) => r.item_id) };
  },
});

const mergeStatus = defineOp({
  writes: false,
  description: "The merge queue of this machine and the latest merge results",
  http: { method: "GET", path: "/api/merge" },
  input: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(20) }),
  run(ctx, input) {
    return { queue: ctx.services.merge.rows(), results: ctx.services.merge.results(input.limit) };
  },
});

export default defineFeature({
  name: "merge",
  ...mergeContract,
  localOnly: ["the merge queue and the record of merge results (items keep their merged sha in the hub)"],
  trust: MERGE_TRUST,
  migrations: queueMigrations,
  ops: { "item.merge": itemMerge, "merge.status": mergeStatus },
  setup(ctx) {
    ctx.services.merge = createMergeQueue(ctx);
  },
  on: {
    async transition(ctx, e) {
      if (e.to !== "merge" || ctx.config.merge.mode !== "auto") return;
      if (!(await _holdsBranch(ctx, e.item_id))) return; // another machine's
      if (ctx.services.merge.enqueue(e.item_id)) void ctx.services.merge.drain();
    },
  },
  tick(ctx) {
    if (ctx.mode === "daemon") ctx.services.merge.tick();
  },
  async reconcile(ctx) {
    if (ctx.mode !== "daemon") return { changed: 0 };
    let changed = 0;
    if (ctx.config.merge.mode === "auto") {
      for (const item of await ctx.ops.call("items.list", { stage: "merge" })) {
        if (!(await _holdsBranch(ctx, item.id))) continue;
        if (ctx.services.merge.enqueue(item.id)) changed++;
      }
    }
    // at start (the runtime reconciles right after starting the features) and after: what was queued, or
    // interrupted mid-merge, goes on (not awaited: a check may take minutes)
    void ctx.services.merge.drain();
    return { changed };
  },
});

// --- internal ---

/** Whether this machine has the item's branch: the machine that holds it merges the item. */
async function _holdsBranch(ctx: Context, itemId: string): Promise<boolean> {
  return (await commitOf(ctx.paths.root, `refs/heads/${itemBranch(itemId)}`)) !== null;
}

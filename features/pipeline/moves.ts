/** @module Moving items between stages: `item.move`, and the archiving of items done long enough. */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { agentIdSchema, itemIdSchema } from "../../core/ids.ts";
import type { HubTx } from "../../hub/apply.ts";
import { defineHubOp, defineMutation } from "../../hub/op.ts";
import { claimHeld, type Item, itemPath, mergedSchema, mustItem, stageSchema, writeItem } from "./item.ts";
import { checkMove, MET_STAGES, type Stage, UNCLAIMED_STAGES } from "./stages.ts";

/** Fencing token of the claim the caller holds. */
export const fenceSchema = z.number().int().min(0).describe("Fencing token of the claim the caller holds");

export const itemMove = defineHubOp({
  description: "Move an item to another stage",
  input: z.strictObject({
    id: itemIdSchema,
    to: stageSchema,
    agent: agentIdSchema.optional().describe("Who moves it"),
    reason: z.string().max(2000).optional(),
    fence: fenceSchema.optional(),
    force: z.boolean().default(false).describe("Move into coding even when dependencies are not done"),
    merged: mergedSchema
      .omit({ at: true })
      .optional()
      .describe("With to done: the commit on the base branch that landed the item's work"),
  }),
  http: { method: "POST", path: "/api/items/:id/move" },
  summary: (args) =>
    `→ ${args.to}${args.merged ? `, merged ${args.merged.sha.slice(0, 10)} into ${args.merged.base} (${args.merged.strategy})` : ""}`,
  apply(args, tx): Item {
    const item = mustItem(tx, args.id, "move");
    checkFence(item, args.fence, "move");
    if (args.agent && item.claim && claimHeld(item, tx.now) && item.claim.agent_id !== args.agent) {
      throw new DroverError("claimed", `Cannot move item "${item.id}": held by "${item.claim.agent_id}"`, {
        details: { holder: item.claim },
      });
    }
    checkMove(item.id, item.stage, args.to);
    if (args.to === "coding" && !args.force) _checkDeps(tx, item);
    if (args.merged && args.to !== "done")
      throw new DroverError("invalid_input", `Cannot move item "${item.id}" to ${args.to} as merged: only to done`);
    // landed now; or reopened, and what landed before is no longer where its work stands
    const merged = args.merged ? { ...args.merged, at: iso(tx.now) } : item.stage === "done" ? undefined : item.merged;
    return moveItem(tx, { ...item, merged }, args.to);
  },
});

/** Moves an item done since before `cutoff` to archived (`pipeline.done_retention_secs`). */
export const archiveDone = defineMutation("item.archive", {
  args: z.strictObject({ id: itemIdSchema, reason: z.literal("retention"), cutoff: z.string().max(40) }),
  apply(args, tx) {
    const item = mustItem(tx, args.id, "archive");
    if (item.stage === "done" && item.updated_at <= args.cutoff) moveItem(tx, item, "archived");
  },
});

/** Writes the item in its new stage; entering an unclaimed stage drops the claim. */
export function moveItem(tx: HubTx, item: Item, to: Stage): Item {
  const next: Item = { ...item, stage: to, updated_at: iso(tx.now) };
  if (UNCLAIMED_STAGES.has(to)) next.claim = null;
  return writeItem(tx, next);
}

/** Refuses a fence older than the item's: the caller's claim was taken over since (`stale_fence`). */
export function checkFence(item: Item, given: number | undefined, verb: string) {
  if (given !== undefined && given < item.fence) {
    throw new DroverError(
      "stale_fence",
      `Cannot ${verb} item "${item.id}": fence ${given} is older than the item's ${item.fence}`,
      {
        details: { given, current: item.fence },
      },
    );
  }
}

/** The item's dependencies that are not done yet. */
export function unmetDeps(tx: HubTx, item: Item): string[] {
  return item.depends_on.filter((dep) => {
    const raw = tx.read(itemPath(dep)) as Item | null;
    return !raw || !MET_STAGES.has(raw.stage);
  });
}

// --- internal ---

function _checkDeps(tx: HubTx, item: Item) {
  const unmet = unmetDeps(tx, item);
  if (unmet.length) {
    throw new DroverError(
      "blocked_by_deps",
      `Cannot move item "${item.id}" into coding: waiting for ${unmet.map((d) => `"${d}"`).join(", ")}`,
      {
        details: { unmet },
      },
    );
  }
}

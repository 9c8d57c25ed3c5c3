/**
 * @module The pipeline's stages and the only legal moves between them (SPEC §5), as one table and one pure
 * function.
 */
import { DroverError } from "../../core/errors.ts";

export const STAGES = ["backlog", "coding", "qa", "merge", "blocked", "done", "abandoned", "archived"] as const;
export type Stage = (typeof STAGES)[number];

export const TRANSITIONS: Readonly<Record<Stage, readonly Stage[]>> = {
  backlog: ["coding", "blocked", "abandoned"],
  coding: ["qa", "merge", "backlog", "blocked", "abandoned"],
  qa: ["merge", "coding", "backlog", "blocked", "abandoned"],
  merge: ["done", "coding", "qa", "blocked", "abandoned"],
  blocked: ["backlog", "coding", "qa", "merge", "abandoned"],
  done: ["archived", "coding"],
  abandoned: ["backlog"],
  archived: [],
};

/** Stages in which an item holds no claim: entering one releases it. */
export const UNCLAIMED_STAGES: ReadonlySet<Stage> = new Set(["backlog", "done", "abandoned", "archived"]);

/** Stages that end an item's work. */
export const TERMINAL_STAGES: ReadonlySet<Stage> = new Set(["done", "abandoned", "archived"]);

/** Stages an item can be taken from by `item.next` (when unclaimed and its dependencies are met). */
export const READY_STAGES: ReadonlySet<Stage> = new Set(["backlog", "coding", "qa", "merge"]);

/** Dependencies count as met in these stages. */
export const MET_STAGES: ReadonlySet<Stage> = new Set(["done", "archived"]);

export function isLegalMove(from: Stage, to: Stage): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws `illegal_transition`, naming the legal targets, unless `from` → `to` is in the table. */
export function checkMove(id: string, from: Stage, to: Stage): void {
  if (isLegalMove(from, to)) return;
  const legal = TRANSITIONS[from];
  throw new DroverError(
    "illegal_transition",
    `Cannot move item "${id}" from "${from}" to "${to}": legal targets are ${legal.length ? legal.map((s) => `"${s}"`).join(", ") : "none"}`,
    { details: { from, to, legal } },
  );
}

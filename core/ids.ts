/**
 * @module The ids every part of drover passes around — agents and items — checked before they touch a path
 * (they name files in the hub, folders of worktrees and branches).
 */
import { z } from "zod";

/** Item ids: short lower-case base32, longer when taken. */
export const itemIdSchema = z
  .string()
  .regex(/^[a-z2-7]{5,32}$/, "must be 5 to 32 characters of a-z and 2-7")
  .describe("Item id");

export const agentIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit")
  .describe("Agent id");

/** Item labels (and the labels a runner takes items by): no commas, as the CLI prints them comma-separated. */
export const labelSchema = z.string().regex(/^[^\s,]{1,64}$/, "must be 1 to 64 characters without spaces or commas");

/** The git branch an item's work is on, in the project's repository (its worktree's, the one merge lands). */
export function itemBranch(id: string): string {
  return `drover/item/${id}`;
}

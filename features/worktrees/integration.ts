/**
 * @module Worktrees carry the agents' integration (SPEC §13): a session started in `.drover/worktrees/<id>` runs
 * the project's hooks even when the integration files were never committed — drover writes what the checkout
 * lacks, untracked, and tells git to ignore it.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { carryClaudeHooks } from "../../clients/claude.ts";
import { excludeFromGit } from "./git.ts";

/** Writes into one worktree what it lacks of the project's integration; true when it wrote anything. */
export async function carryIntegration(root: string, worktree: string): Promise<boolean> {
  const written = carryClaudeHooks(root, worktree);
  if (written) await excludeFromGit(root, `/${written}`);
  return written !== null;
}

/** The same for every worktree drover made (after `drover integrate` changed the project's files). */
export async function carryIntegrationToAll(root: string, worktrees: string): Promise<number> {
  let carried = 0;
  for (const entry of _dirs(worktrees)) if (await carryIntegration(root, join(worktrees, entry))) carried++;
  return carried;
}

// --- internal ---

function _dirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * @module The project's own git for worktrees, through the system binary (isomorphic-git has no worktrees):
 * creating one on `drover/item/<id>`, and whether removing one would destroy work. Checking out or scanning a
 * project can take seconds: these run without blocking the daemon.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DroverError } from "../../core/errors.ts";
import { commitOf, gitRun, lastLine } from "../../core/git.ts";

/**
 * Adds the worktree, making its branch from `base` unless the branch exists already. Names reach git as commit
 * ids or after `--end-of-options`, never where git could read them as options.
 */
export async function addWorktree(root: string, path: string, branch: string, base: string): Promise<void> {
  await gitRun(root, ["worktree", "prune"]);
  const exists = await commitOf(root, `refs/heads/${branch}`);
  const from = exists ? null : await commitOf(root, base);
  // git's own words for a repository with no commit yet ("not a valid object name") puzzle a new user
  if (!exists && !from)
    throw new DroverError(
      "conflict",
      `Cannot create the worktree "${path}": the base branch "${base}" has no commit yet`,
    );
  const r = await gitRun(
    root,
    exists
      ? ["worktree", "add", "--end-of-options", path, branch]
      : ["worktree", "add", "-b", branch, "--end-of-options", path, from!],
  );
  if (!r.ok) throw new DroverError("conflict", `Cannot create the worktree "${path}": ${lastLine(r.out)}`);
}

/**
 * Adds a pattern to the repository's `info/exclude` (shared by all its worktrees) unless it is there: files
 * drover puts into a worktree stay out of `git status` and of the agent's commits.
 */
export async function excludeFromGit(root: string, pattern: string): Promise<void> {
  const common = await gitRun(root, ["rev-parse", "--path-format=absolute", "--git-common-dir"]);
  if (!common.ok) throw new DroverError("conflict", `Cannot find the git folder of "${root}": ${common.out}`);
  const file = join(common.out, "info", "exclude");
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  if (text.split("\n").includes(pattern)) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text + (text && !text.endsWith("\n") ? "\n" : "") + pattern + "\n");
}

/** Why the worktree must be kept (uncommitted changes, or commits neither merged into `base` nor pushed), or null. */
export async function keepReason(root: string, path: string, branch: string, base: string): Promise<string | null> {
  const status = await gitRun(path, ["status", "--porcelain"]);
  if (!status.ok) return `cannot read its status: ${status.out}`;
  if (status.out) return "uncommitted changes";
  const [tip, merged] = [await commitOf(root, `refs/heads/${branch}`), await commitOf(root, base)];
  if (!tip || !merged)
    return `cannot compare it with "${base}": ${!tip ? `no branch "${branch}"` : `no commit "${base}"`}`;
  const ahead = await gitRun(root, ["rev-list", "--count", tip, "--not", merged, "--remotes"]);
  if (!ahead.ok) return `cannot compare it with "${base}": ${ahead.out}`;
  return Number(ahead.out) > 0 ? `${ahead.out} commit(s) not merged into "${base}" nor pushed` : null;
}

export async function removeWorktree(root: string, path: string, branch: string): Promise<void> {
  const r = await gitRun(root, ["worktree", "remove", path]);
  if (!r.ok) throw new DroverError("conflict", `Cannot remove the worktree "${path}": ${r.out}`);
  await gitRun(root, ["branch", "-D", "--end-of-options", branch]);
}

/**
 * @module The project's own git, through the system binary (isomorphic-git has no worktrees): the base
 * branch, creating a worktree on `drover/item/<id>`, and whether removing one would destroy work.
 */
import { DroverError } from "../../core/errors.ts";
import { git } from "../../core/git.ts";

/** `pipeline.base_branch`, else the remote's default branch, else the branch checked out at the root. */
export function baseBranch(root: string, configured: string): string {
  if (configured) return configured;
  const remote = git(root, ["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"]);
  if (remote.ok && remote.out) return remote.out.replace(/^origin\//, "");
  const current = git(root, ["symbolic-ref", "--quiet", "--short", "HEAD"]);
  if (current.ok && current.out) return current.out;
  throw new DroverError("conflict", `Cannot find the base branch of "${root}": set pipeline.base_branch`);
}

/** Adds the worktree, making its branch from `base` unless the branch exists already. */
export function addWorktree(root: string, path: string, branch: string, base: string): void {
  git(root, ["worktree", "prune"]);
  const exists = git(root, ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`]).ok;
  const r = exists ? git(root, ["worktree", "add", path, branch]) : git(root, ["worktree", "add", "-b", branch, path, base]);
  if (r.ok) return;
  // git's own words for a repository with no commit yet ("not a valid object name") puzzle a new user
  const why = !exists && !git(root, ["rev-parse", "--verify", "--quiet", `${base}^{commit}`]).ok ? `the base branch "${base}" has no commit yet` : r.out.split("\n").at(-1);
  throw new DroverError("conflict", `Cannot create the worktree "${path}": ${why}`);
}

/** Why the worktree must be kept (uncommitted changes, or commits neither merged into `base` nor pushed), or null. */
export function keepReason(root: string, path: string, branch: string, base: string): string | null {
  const status = git(path, ["status", "--porcelain"]);
  if (!status.ok) return `cannot read its status: ${status.out}`;
  if (status.out) return "uncommitted changes";
  const ahead = git(root, ["rev-list", "--count", branch, "--not", base, "--remotes"]);
  if (!ahead.ok) return `cannot compare it with "${base}": ${ahead.out}`;
  return Number(ahead.out) > 0 ? `${ahead.out} commit(s) not merged into "${base}" nor pushed` : null;
}

export function removeWorktree(root: string, path: string, branch: string): void {
  const r = git(root, ["worktree", "remove", path]);
  if (!r.ok) throw new DroverError("conflict", `Cannot remove the worktree "${path}": ${r.out}`);
  git(root, ["branch", "-D", branch]);
}

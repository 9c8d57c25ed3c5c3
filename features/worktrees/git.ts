/**
 * @module The project's own git, through the system binary (isomorphic-git has no worktrees): the base
 * branch, creating a worktree on `drover/item/<id>`, and whether removing one would destroy work. Checking
 * out or scanning a project can take seconds: all but the base-branch lookup run without blocking the daemon.
 */
import { DroverError } from "../../core/errors.ts";
import { git, gitAsync, type GitResult } from "../../core/git.ts";

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
export async function addWorktree(root: string, path: string, branch: string, base: string): Promise<void> {
  await _git(root, ["worktree", "prune"]);
  const exists = (await _git(root, ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`])).ok;
  const r = await _git(root, exists ? ["worktree", "add", path, branch] : ["worktree", "add", "-b", branch, path, base]);
  if (r.ok) return;
  // git's own words for a repository with no commit yet ("not a valid object name") puzzle a new user
  const noCommit = !exists && !(await _git(root, ["rev-parse", "--verify", "--quiet", `${base}^{commit}`])).ok;
  const why = noCommit ? `the base branch "${base}" has no commit yet` : r.out.split("\n").at(-1);
  throw new DroverError("conflict", `Cannot create the worktree "${path}": ${why}`);
}

/** Why the worktree must be kept (uncommitted changes, or commits neither merged into `base` nor pushed), or null. */
export async function keepReason(root: string, path: string, branch: string, base: string): Promise<string | null> {
  const status = await _git(path, ["status", "--porcelain"]);
  if (!status.ok) return `cannot read its status: ${status.out}`;
  if (status.out) return "uncommitted changes";
  const ahead = await _git(root, ["rev-list", "--count", branch, "--not", base, "--remotes"]);
  if (!ahead.ok) return `cannot compare it with "${base}": ${ahead.out}`;
  return Number(ahead.out) > 0 ? `${ahead.out} commit(s) not merged into "${base}" nor pushed` : null;
}

export async function removeWorktree(root: string, path: string, branch: string): Promise<void> {
  const r = await _git(root, ["worktree", "remove", path]);
  if (!r.ok) throw new DroverError("conflict", `Cannot remove the worktree "${path}": ${r.out}`);
  await _git(root, ["branch", "-D", branch]);
}

// --- internal ---

async function _git(cwd: string, args: string[]): Promise<GitResult> {
  const { code, stdout, stderr } = await gitAsync(cwd, args);
  return { ok: code === 0, out: (code === 0 ? stdout : stderr || stdout).trim() };
}

/**
 * @module One attempt at landing an item's branch on the base (SPEC §14), with the system git: in a scratch
 * worktree at the base's tip, the branch applied by strategy, the check run in the merged tree, then the base
 * moved only if it still points where the attempt started — `update-ref` with the old value, or, where the base
 * is checked out, a fast-forward of that clean checkout. With `push`, the remote's base is the start and is pushed
 * to first (fast-forward only). The user's checkouts are never written while they have local changes, and the
 * base moves once or not at all: an attempt that finds it moved says `retry`.
 */
import { existsSync, rmSync } from "node:fs";
import { commitOf, gitAsync, gitRun } from "../../core/git.ts";
import { childEnv, signalGroup } from "../../core/process.ts";
import type { Strategy } from "./contract.ts";

export interface LandPlan {
  root: string;
  base: string;
  branch: string;
  strategy: Strategy;
  /** The commit message of a merge or squash commit. */
  message: string;
  check: string[];
  checkTimeoutMs: number;
  /** The remote to push the base to, or null. */
  push: string | null;
  /** Where the scratch worktree goes (removed after). */
  scratch: string;
  /** A fetch or push to the remote gives up after this long. */
  networkTimeoutMs: number;
  /** Asked right before anything is published: false (the item left merge meanwhile) lands nothing. */
  proceed(): Promise<boolean>;
  /** Called with the commit about to become the base, before the base moves (a restart finds it there). */
  onLanding(sha: string): void;
}

export type LandResult =
  /** `tip`: the branch's commit that was landed (the branch may have moved on since). */
  | { kind: "merged"; sha: string; tip: string }
  | { kind: "conflict"; files: string[] }
  | { kind: "check"; exitCode: number | null; tail: string }
  | { kind: "waiting"; reason: string }
  | { kind: "retry"; reason: string };

export async function landOnce(plan: LandPlan): Promise<LandResult> {
  const { root, base } = plan;
  const baseSha = await commitOf(root, `refs/heads/${base}`);
  if (!baseSha) return { kind: "waiting", reason: `the base branch "${base}" has no commit` };
  const tip = await commitOf(root, `refs/heads/${plan.branch}`);
  if (!tip) return { kind: "waiting", reason: `the branch "${plan.branch}" is not on this machine` };
  // a checkout that cannot take the result waits before any work is done (a check may take minutes)
  const blocked = await _checkoutBlocks(root, base);
  if (blocked) return { kind: "waiting", reason: blocked };
  const start = plan.push ? await _startFromRemote(plan, baseSha) : { sha: baseSha };
  if ("waiting" in start) return { kind: "waiting", reason: start.waiting };
  if (await _isAncestor(root, tip, start.sha)) return _landed(await _moveBase(plan, baseSha, start.sha), tip);
  await _removeScratch(root, plan.scratch);
  try {
    const made = await _apply(plan, start.sha, tip);
    if (made.kind !== "made") return made;
    if (plan.check.length) {
      const check = await _runCheck(plan.check, plan.scratch, plan.checkTimeoutMs);
      if (check.exitCode !== 0) return { kind: "check", ...check };
    }
    if (!(await plan.proceed())) return { kind: "waiting", reason: "the item left merge" };
    // nothing is published while the local side could not follow: a dirty checkout, a base moved meanwhile
    const late = await _checkoutBlocks(root, base);
    if (late) return { kind: "waiting", reason: late };
    if ((await commitOf(root, `refs/heads/${base}`)) !== baseSha) return { kind: "retry", reason: `"${base}" moved` };
    plan.onLanding(made.sha);
    if (plan.push) {
      const pushed = await _network(plan, [
        "push",
        "--porcelain",
        "--end-of-options",
        plan.push,
        `${made.sha}:refs/heads/${base}`,
      ]);
      if (!pushed.ok) return { kind: "retry", reason: `the remote's "${base}" moved: ${_last(pushed.out)}` };
    }
    return _landed(await _moveBase(plan, baseSha, made.sha), tip);
  } finally {
    await _removeScratch(root, plan.scratch);
  }
}

/** Whether `sha` is on the base branch already (a landing recorded before a restart). */
export async function onBase(root: string, base: string, sha: string): Promise<boolean> {
  const baseSha = await commitOf(root, `refs/heads/${base}`);
  return baseSha !== null && (await _isAncestor(root, sha, baseSha));
}

// --- internal ---

type _Moved = { kind: "moved"; sha: string } | Extract<LandResult, { kind: "waiting" | "retry" }>;

function _landed(moved: _Moved, tip: string): LandResult {
  return moved.kind === "moved" ? { kind: "merged", sha: moved.sha, tip } : moved;
}

/** Why the checkout that has the base (the root, usually) cannot take a fast-forward now, or null. */
async function _checkoutBlocks(root: string, base: string): Promise<string | null> {
  const checkout = await _checkoutOf(root, base);
  if (!checkout) return null;
  const dirty = await gitRun(checkout, ["status", "--porcelain", "--untracked-files=no"]);
  return !dirty.ok || dirty.out ? `"${checkout}" has "${base}" checked out with local changes` : null;
}

/** A fetch or push: bounded in time, never prompting. */
async function _network(plan: LandPlan, args: string[]): Promise<{ ok: boolean; out: string }> {
  const { code, stdout, stderr } = await gitAsync(plan.root, args, { timeoutMs: plan.networkTimeoutMs });
  return { ok: code === 0, out: (code === 0 ? stdout : stderr || stdout).trim() };
}

/** The branch applied on `start` in the scratch worktree: the commit made, or the conflict's files. */
async function _apply(
  plan: LandPlan,
  start: string,
  tip: string,
): Promise<{ kind: "made"; sha: string } | { kind: "conflict"; files: string[] } | { kind: "retry"; reason: string }> {
  const { scratch } = plan;
  const at = plan.strategy === "rebase" ? tip : start;
  const added = await gitRun(plan.root, ["worktree", "add", "--detach", "--end-of-options", scratch, at]);
  if (!added.ok) return { kind: "retry", reason: `cannot make a scratch worktree: ${_last(added.out)}` };
  const who = await _identity(plan.root);
  const steps: string[][] =
    plan.strategy === "merge"
      ? [[...who, "merge", "--no-ff", "--no-edit", "-m", plan.message, "--end-of-options", tip]]
      : plan.strategy === "squash"
        ? [
            ["merge", "--squash", "--end-of-options", tip],
            [...who, "commit", "--allow-empty", "-m", plan.message],
          ]
        : [[...who, "rebase", "--end-of-options", start]];
  for (const step of steps) {
    const r = await gitRun(scratch, step);
    if (r.ok) continue;
    const unmerged = await gitRun(scratch, ["diff", "--name-only", "--diff-filter=U"]);
    const files = unmerged.ok ? unmerged.out.split("\n").filter(Boolean) : [];
    if (plan.strategy === "rebase") await gitRun(scratch, ["rebase", "--abort"]);
    if (files.length) return { kind: "conflict", files };
    return {
      kind: "retry",
      reason: `git ${step.find((a) => !a.startsWith("-") && !a.includes("="))}: ${_last(r.out)}`,
    };
  }
  const sha = await commitOf(scratch, "HEAD");
  return sha ? { kind: "made", sha } : { kind: "retry", reason: "the scratch worktree has no HEAD" };
}

/**
 * Moves the base from `expected` to `sha`: where a worktree has the base checked out, a fast-forward of that
 * checkout when it is clean (else wait); elsewhere `update-ref` with the old value. Moved meanwhile: retry.
 */
async function _moveBase(plan: LandPlan, expected: string, sha: string): Promise<_Moved> {
  const { root, base } = plan;
  if (sha === expected) return { kind: "moved", sha };
  const checkout = await _checkoutOf(root, base);
  if (checkout) {
    const blocked = await _checkoutBlocks(root, base);
    if (blocked) return { kind: "waiting", reason: blocked };
    if ((await commitOf(root, `refs/heads/${base}`)) !== expected) return { kind: "retry", reason: `"${base}" moved` };
    const ff = await gitRun(checkout, ["merge", "--ff-only", "--end-of-options", sha]);
    if (!ff.ok) return { kind: "waiting", reason: `cannot fast-forward "${checkout}": ${_last(ff.out)}` };
    return { kind: "moved", sha };
  }
  const moved = await gitRun(root, ["update-ref", "-m", "drover: merge", `refs/heads/${base}`, sha, expected]);
  return moved.ok ? { kind: "moved", sha } : { kind: "retry", reason: `"${base}" moved` };
}

/** With push: the remote's base is where to start, when the local one is behind it (or level, or ahead). */
async function _startFromRemote(plan: LandPlan, local: string): Promise<{ sha: string } | { waiting: string }> {
  const { root, base } = plan;
  const remote = plan.push!;
  const tracking = `refs/remotes/${remote}/${base}`;
  const fetched = await _network(plan, [
    "fetch",
    "--quiet",
    "--end-of-options",
    remote,
    `+refs/heads/${base}:${tracking}`,
  ]);
  if (!fetched.ok) return { waiting: `cannot fetch "${base}" from "${remote}": ${_last(fetched.out)}` };
  const theirs = await commitOf(root, tracking);
  if (!theirs || (await _isAncestor(root, theirs, local))) return { sha: local };
  if (await _isAncestor(root, local, theirs)) return { sha: theirs };
  return { waiting: `"${base}" here and on "${remote}" have diverged: merge or rebase them first` };
}

/** The worktree (the root or another) that has the base checked out, or null. */
async function _checkoutOf(root: string, base: string): Promise<string | null> {
  const list = await gitRun(root, ["worktree", "list", "--porcelain"]);
  if (!list.ok) return null;
  let path: string | null = null;
  for (const line of list.out.split("\n")) {
    if (line.startsWith("worktree ")) path = line.slice("worktree ".length);
    else if (line === `branch refs/heads/${base}`) return path;
  }
  return null;
}

async function _isAncestor(root: string, a: string, b: string): Promise<boolean> {
  return (await gitRun(root, ["merge-base", "--is-ancestor", a, b])).ok;
}

/** A committer for merge commits when the repository has none configured (a fresh machine, CI). */
async function _identity(root: string): Promise<string[]> {
  const name = await gitRun(root, ["config", "user.name"]);
  const email = await gitRun(root, ["config", "user.email"]);
  return name.ok && email.ok ? [] : ["-c", "user.name=drover", "-c", "user.email=drover@localhost"];
}

async function _removeScratch(root: string, scratch: string): Promise<void> {
  if (existsSync(scratch)) await gitRun(root, ["worktree", "remove", "--force", scratch]);
  rmSync(scratch, { recursive: true, force: true });
  await gitRun(root, ["worktree", "prune"]);
}

/** Runs the check in the merged tree, its own process group, killed at the timeout; its exit code and output's end. */
async function _runCheck(
  argv: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ exitCode: number | null; tail: string }> {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(argv, { cwd, env: childEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
  } catch (err) {
    return { exitCode: null, tail: `cannot start the check: ${(err as Error).message}` };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(proc.pid, "SIGKILL");
  }, timeoutMs);
  const [out, err] = await Promise.all([
    new Response(proc.stdout as ReadableStream).text(),
    new Response(proc.stderr as ReadableStream).text(),
  ]);
  const code = await proc.exited;
  clearTimeout(timer);
  const tail = `${out}${err}`.slice(-2500).trim();
  if (timedOut) return { exitCode: null, tail: `${tail}\n(the check ran past its timeout and was stopped)`.trim() };
  return { exitCode: code, tail };
}

function _last(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

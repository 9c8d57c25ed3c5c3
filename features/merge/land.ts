/**
 * @module One attempt at landing an item's branch on the base (SPEC §14), with the system git: in a scratch
 * worktree at the base's tip, the branch applied by strategy, the check run in the merged tree, then the base
 * moved only if it still points where the attempt started — `update-ref` with the old value, or, where the base
 * is checked out, a fast-forward of that clean checkout. With `push`, the remote's base is the start and is pushed
 * to first (fast-forward only). The user's checkouts are never written while they have local changes, and the
 * base moves once or not at all: an attempt that finds it moved, here or on the remote, says `retry`.
 */
import { existsSync, rmSync } from "node:fs";
import { commitOf, gitRun, lastLine } from "../../core/git.ts";
import { childEnv, outputTail, signalGroup } from "../../core/process.ts";
import type { Strategy } from "./contract.ts";

/** How much of the end of a check's output a failure keeps (for the item's note). */
const TAIL_BYTES = 2500;

export interface LandPlan {
  root: string;
  base: string;
  branch: string;
  strategy: Strategy;
  /** The commit message of a merge or squash commit. */
  message: string;
  check: string[];
  /** Options of the commands that make commits: a committer where the repository has none (`committer`). */
  identity: string[];
  /** The remote to push the base to, or null. */
  push: string | null;
  /** Where the scratch worktree goes (removed after). */
  scratch: string;
  /** A fetch or push to the remote gives up after this long. */
  networkTimeoutMs: number;
  /** Called once the attempt starts its work: the checkout that has the base could take the result. */
  onStarted(): void;
  /** Called as the check starts, with what stops it (the caller keeps its timeout), and with null once it ended. */
  onCheck(stop: (() => void) | null): void;
  /** Asked right before anything is published: false (the item left merge meanwhile) lands nothing. */
  proceed(): Promise<boolean>;
  /** Called with the commit about to become the base and the branch's commit it lands, before the base moves. */
  onLanding(sha: string, tip: string): void;
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
  const early = await _checkout(root, base);
  if ("waiting" in early) return { kind: "waiting", reason: early.waiting };
  plan.onStarted();
  const start = plan.push ? await _startFromRemote(plan, baseSha) : { sha: baseSha };
  if ("waiting" in start) return { kind: "waiting", reason: start.waiting };
  // already in the start (the remote's base, say): nothing to push, the local base follows
  if (await _isAncestor(root, tip, start.sha))
    return _publish(plan, { from: baseSha, sha: start.sha, tip, push: false });
  await _removeScratch(root, plan.scratch);
  try {
    const made = await _apply(plan, start.sha, tip);
    if (made.kind !== "made") return made;
    if (plan.check.length) {
      const check = await _runCheck(plan, plan.scratch);
      if (check.exitCode !== 0) return { kind: "check", ...check };
    }
    if (!(await plan.proceed())) return { kind: "waiting", reason: "the item left merge" };
    return await _publish(plan, { from: baseSha, sha: made.sha, tip, push: plan.push !== null });
  } finally {
    await _removeScratch(root, plan.scratch);
  }
}

/** Whether `sha` is on the base branch already (a landing recorded before a restart). */
export async function onBase(root: string, base: string, sha: string): Promise<boolean> {
  const baseSha = await commitOf(root, `refs/heads/${base}`);
  return baseSha !== null && (await _isAncestor(root, sha, baseSha));
}

/** Options that make merge commits where the repository names no committer (a fresh machine, CI), else none. */
export async function committer(root: string): Promise<string[]> {
  const named = await gitRun(root, ["config", "--get-regexp", "^user\\.(name|email)$"]);
  const keys = new Set(named.out.split("\n").map((line) => line.split(" ")[0]));
  return named.ok && keys.has("user.name") && keys.has("user.email")
    ? []
    : ["-c", "user.name=drover", "-c", "user.email=drover@localhost"];
}

// --- internal ---

/**
 * Moves the base from `from` to `sha` (after pushing it with `push`), where it can be done now: nothing is
 * published while the local side could not follow — a checkout with local changes, a base moved meanwhile.
 */
async function _publish(
  plan: LandPlan,
  at: { from: string; sha: string; tip: string; push: boolean },
): Promise<LandResult> {
  const { root, base } = plan;
  const merged: LandResult = { kind: "merged", sha: at.sha, tip: at.tip };
  if (at.sha === at.from) return merged;
  // looked up again: the checkout may have got changes, or another branch, while the check ran
  const ready = await _checkout(root, base);
  if ("waiting" in ready) return { kind: "waiting", reason: ready.waiting };
  if ((await commitOf(root, `refs/heads/${base}`)) !== at.from) return { kind: "retry", reason: `"${base}" moved` };
  plan.onLanding(at.sha, at.tip);
  if (at.push) {
    const args = ["push", "--porcelain", "--end-of-options", plan.push!, `${at.sha}:refs/heads/${base}`];
    const pushed = await gitRun(root, args, { timeoutMs: plan.networkTimeoutMs });
    if (!pushed.ok) return _refused(plan, pushed);
    // a push takes a while: the checkout is not written if it got local changes meanwhile
    const dirty = ready.checkout && (await _dirty(ready.checkout, base));
    if (dirty) return { kind: "waiting", reason: dirty };
  }
  if (ready.checkout) {
    const ff = await gitRun(ready.checkout, ["merge", "--ff-only", "--end-of-options", at.sha]);
    if (!ff.ok) return { kind: "waiting", reason: `cannot fast-forward "${ready.checkout}": ${lastLine(ff.out)}` };
    return merged;
  }
  const moved = await gitRun(root, ["update-ref", "-m", "drover: merge", `refs/heads/${base}`, at.sha, at.from]);
  return moved.ok ? merged : { kind: "retry", reason: `"${base}" moved` };
}

/**
 * A push the remote refused: beaten by another push (`git push --porcelain` marks the ref `!` and `[rejected]`,
 * a fetch and a new attempt land it), or refused for good reasons of its own — a hook, a protected branch, no
 * access, no answer — which no new attempt changes: the merge waits.
 */
function _refused(plan: LandPlan, pushed: { stdout: string; stderr: string }): LandResult {
  if (/^!\t[^\t]*\t\[rejected\]/m.test(pushed.stdout))
    return { kind: "retry", reason: `the remote's "${plan.base}" moved` };
  const verdict = /^!\t[^\t]*\t(.+)$/m.exec(pushed.stdout)?.[1] ?? lastLine(pushed.stderr || pushed.stdout);
  return { kind: "waiting", reason: `cannot push "${plan.base}" to "${plan.push}": ${verdict}` };
}

/** The worktree that has the base checked out (the root, usually; null: none), or why it cannot follow now. */
async function _checkout(root: string, base: string): Promise<{ checkout: string | null } | { waiting: string }> {
  const checkout = await _checkoutOf(root, base);
  const dirty = checkout && (await _dirty(checkout, base));
  return dirty ? { waiting: dirty } : { checkout };
}

/** Why a checkout of the base cannot take a fast-forward now (local changes to tracked files), or null. */
async function _dirty(checkout: string, base: string): Promise<string | null> {
  const status = await gitRun(checkout, ["status", "--porcelain", "--untracked-files=no"]);
  return !status.ok || status.out ? `"${checkout}" has "${base}" checked out with local changes` : null;
}

/** The branch applied on `start` in the scratch worktree: the commit made, or the conflict's files. */
async function _apply(
  plan: LandPlan,
  start: string,
  tip: string,
): Promise<{ kind: "made"; sha: string } | { kind: "conflict"; files: string[] } | { kind: "retry"; reason: string }> {
  const { scratch, identity: who } = plan;
  const at = plan.strategy === "rebase" ? tip : start;
  const added = await gitRun(plan.root, ["worktree", "add", "--detach", "--end-of-options", scratch, at]);
  if (!added.ok) return { kind: "retry", reason: `cannot make a scratch worktree: ${lastLine(added.out)}` };
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
      reason: `git ${step.find((a) => !a.startsWith("-") && !a.includes("="))}: ${lastLine(r.out)}`,
    };
  }
  const sha = await commitOf(scratch, "HEAD");
  return sha ? { kind: "made", sha } : { kind: "retry", reason: "the scratch worktree has no HEAD" };
}

/** With push: the remote's base is where to start, when the local one is behind it (or level, or ahead). */
async function _startFromRemote(plan: LandPlan, local: string): Promise<{ sha: string } | { waiting: string }> {
  const { root, base } = plan;
  const remote = plan.push!;
  const tracking = `refs/remotes/${remote}/${base}`;
  const fetched = await gitRun(
    root,
    ["fetch", "--quiet", "--end-of-options", remote, `+refs/heads/${base}:${tracking}`],
    {
      timeoutMs: plan.networkTimeoutMs,
    },
  );
  if (!fetched.ok) return { waiting: `cannot fetch "${base}" from "${remote}": ${lastLine(fetched.out)}` };
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

async function _removeScratch(root: string, scratch: string): Promise<void> {
  if (existsSync(scratch)) await gitRun(root, ["worktree", "remove", "--force", scratch]);
  rmSync(scratch, { recursive: true, force: true });
  await gitRun(root, ["worktree", "prune"]);
}

/**
 * Runs the check in the merged tree, in its own process group (stopped whole); its exit code and the end of its
 * output, stdout and stderr in the order they came. Its timeout is the caller's (`onCheck`): null, and said so.
 */
async function _runCheck(plan: LandPlan, cwd: string): Promise<{ exitCode: number | null; tail: string }> {
  let proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    proc = Bun.spawn(plan.check, {
      cwd,
      env: childEnv(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    });
  } catch (err) {
    return { exitCode: null, tail: `cannot start the check: ${(err as Error).message}` };
  }
  let stopped = false;
  plan.onCheck(() => {
    stopped = true;
    signalGroup(proc.pid, "SIGKILL");
  });
  try {
    const [out, code] = await Promise.all([outputTail([proc.stdout, proc.stderr], TAIL_BYTES), proc.exited]);
    const tail = out.trim();
    if (stopped) return { exitCode: null, tail: `${tail}\n(the check ran past its timeout and was stopped)`.trim() };
    return { exitCode: code, tail };
  } finally {
    plan.onCheck(null);
  }
}

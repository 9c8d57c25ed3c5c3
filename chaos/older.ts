/**
 * An older drover, built from this repository's own history: a mixed team (some machines not yet upgraded) runs
 * the real earlier binary, not an imitation of it. The build is kept under `dist/older/<commit>`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../test/helpers.ts";

/** The last drover that put heartbeats on the shared branch (before presence refs, SPEC §15). */
export const BEFORE_PRESENCE = "c5b48b0";

/** The compiled binary of `commit`, built once. */
export function olderDrover(commit: string = BEFORE_PRESENCE): string {
  const sha = execFileSync("git", ["rev-parse", "--verify", `${commit}^{commit}`], {
    cwd: ROOT,
    encoding: "utf8",
  }).trim();
  const binary = join(ROOT, "dist", "older", sha, "drover");
  if (existsSync(binary)) return binary;
  const tree = join(ROOT, "dist", "older", `${sha}.src`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  // the commit's files only (no worktree to clean up); its dependencies are this checkout's
  execFileSync("sh", ["-c", `git archive "$0" | tar -x -C "$1"`, sha, tree], { cwd: ROOT });
  symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
  execFileSync(process.execPath, [join(tree, "scripts", "build.ts")], { cwd: tree, stdio: "pipe" });
  mkdirSync(join(ROOT, "dist", "older", sha), { recursive: true });
  renameSync(join(tree, "dist", "drover"), binary);
  rmSync(tree, { recursive: true, force: true });
  return binary;
}

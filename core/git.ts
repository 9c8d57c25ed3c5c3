/**
 * @module The system `git` binary: short local commands run synchronously, longer and network ones (a merge, a
 * fetch, a push) asynchronously so a daemon keeps serving while they wait. Commands in the project's repository
 * run its hooks, which get none of drover's secrets.
 */
import { execFileSync, spawn } from "node:child_process";
import { DroverError } from "./errors.ts";
import { childEnv } from "./process.ts";

export interface GitResult {
  ok: boolean;
  /** stdout when it succeeded, else stderr (or the error), trimmed. */
  out: string;
}

/** A quick local git command in `cwd`. */
export function git(cwd: string, args: string[]): GitResult {
  try {
    return {
      ok: true,
      out: execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim(),
    };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, out: (e.stderr || e.message).trim() };
  }
}

export interface GitOptions {
  /** A command still running then is killed and answers code 124, saying so on stderr. */
  timeoutMs?: number;
  /** The environment git and what it runs (hooks, credential helpers) get: by default this process's. */
  env?: Record<string, string | undefined>;
}

/** A git command that may wait on the network; never prompts for credentials. Both streams are kept. */
export function gitAsync(
  cwd: string,
  args: string[],
  options: GitOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("git", args, {
      cwd,
      env: { ...(options.env ?? process.env), GIT_TERMINAL_PROMPT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = options.timeoutMs
      ? setTimeout(() => {
          stderr += `\nno answer within ${options.timeoutMs! / 1000} s`;
          child.kill("SIGKILL");
        }, options.timeoutMs)
      : undefined;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (err) => resolve({ code: 127, stdout, stderr: err.message }));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal === "SIGKILL" && timer ? 124 : (code ?? 1), stdout, stderr });
    });
  });
}

/**
 * The branch work lands on: the configured one (`setting`, the config key that names it and its value, "" for
 * none), else the remote's default branch, else the branch checked out at the root.
 */
export function baseBranch(root: string, setting: { key: string; value: string }): string {
  if (setting.value) return checkBranchName(setting.value, setting.key);
  const remote = git(root, ["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"]);
  if (remote.ok && remote.out) return remote.out.replace(/^origin\//, "");
  const current = git(root, ["symbolic-ref", "--quiet", "--short", "HEAD"]);
  if (current.ok && current.out) return current.out;
  throw new DroverError("conflict", `Cannot find the base branch of "${root}": set ${setting.key}`);
}

/**
 * A git command in the project's repository that may take a while (a checkout, a merge, a push), run without
 * blocking. The repository's hooks run with it: by default they get the environment of a program drover starts,
 * without drover's own secrets. Both streams are kept beside `out` (a push's verdicts are on stdout).
 */
export async function gitRun(
  cwd: string,
  args: string[],
  options: GitOptions = {},
): Promise<GitResult & { stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await gitAsync(cwd, args, { ...options, env: options.env ?? childEnv() });
  return { ok: code === 0, out: (code === 0 ? stdout : stderr || stdout).trim(), stdout, stderr };
}

/** The last line of a command's output: where git says what went wrong. */
export function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

/** The commit a name points at, or null. */
export async function commitOf(root: string, rev: string): Promise<string | null> {
  const r = await gitRun(root, ["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`]);
  return r.ok && /^[0-9a-f]{40}$/.test(r.out) ? r.out : null;
}

/**
 * A branch name from configuration, checked before it reaches a command line or a path: the rules of
 * `git check-ref-format` for `refs/heads/<name>` (test/config-values.test.ts holds them against git itself), and
 * never a leading `-`, which git would read as an option. Throws `bad_config` naming the key.
 */
export function checkBranchName(name: string, key: string): string {
  const parts = name.split("/");
  const bad =
    name.startsWith("-") ||
    name === "@" ||
    /[\x00-\x20\x7f~^:?*[\\]|\.\.|@\{|\.$/.test(name) ||
    parts.some((p) => p === "" || p.startsWith(".") || p.endsWith(".lock"));
  if (bad) throw new DroverError("bad_config", `Invalid "${key}": "${name}" is not a branch name git accepts`);
  return name;
}

/** Bench helpers: throwaway projects, the binary, medians, percentiles, and the result table. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { initProject } from "../cli/init.ts";
import { type Paths, pathsFor } from "../core/paths.ts";
import { BINARY, freePort, waitHealthy } from "../test/helpers.ts";

export const ROOT = join(import.meta.dir, "..");
export { BINARY, freePort } from "../test/helpers.ts";
/** Run at exit: removes the projects the rows made. */
export const cleanups: Array<() => void> = [];

export interface Row {
  row: string;
  value: number;
  unit: string;
  bar: string;
  pass: boolean;
  detail?: string;
}

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function renderRows(rows: Row[]): string {
  const cells = rows.map((r) => [r.row, `${r.value} ${r.unit}`, r.bar, r.pass ? "pass" : "FAIL", r.detail ?? ""]);
  const head = ["what", "median", "bar", "", "detail"];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => "| " + c.map((v, i) => v.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...cells.map(line)].join("\n");
}

/**
 * Where bench projects and files live: `.bench-work/` inside this checkout (made when missing), the kind of
 * disk a user's project is on. On this VM `/tmp` measured ten times slower per file than the work tree of the
 * same ext4 volume, and it drifts.
 */
export function workDir(): string {
  const base = join(ROOT, ".bench-work");
  mkdirSync(base, { recursive: true });
  return base;
}

/** A throwaway git project with drover initialised (hub kept local), removed at exit. */
export async function project(): Promise<Paths> {
  const dir = realpathSync(mkdtempSync(join(workDir(), "project-")));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync("git", ["init", "-q", dir]);
  await initProject(dir, { local: true });
  return pathsFor(dir);
}

/** Starts the compiled daemon on a free port and waits for /health. */
export async function startBinary(paths: Paths, env: Record<string, string> = {}) {
  const port = await freePort();
  const proc = Bun.spawn([BINARY, "serve", "--port", String(port)], {
    cwd: paths.root,
    stdout: "ignore",
    stderr: "ignore",
    env: { ...process.env, ...env },
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, () => proc.exitCode === null);
  return { proc, url, port };
}

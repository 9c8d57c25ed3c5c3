/**
 * Runner rows (SPEC §10): how long from a ready item to its process running (the process itself writes the time
 * it started), and what supervising 20 chatty runs at once costs the compiled daemon in CPU.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Paths } from "../core/paths.ts";
import { writeRunner } from "../test/fixtures/runner-project.ts";
import { api, createItem, firstCommit, until } from "../test/helpers.ts";
import { median, percentile, type Row, round, startBinary } from "./lib.ts";

export async function runnerRows(paths: Paths, busy: Paths, options: { quick: boolean }): Promise<Row[]> {
  // runs work in worktrees, which branch from a commit
  for (const p of [paths, busy]) firstCommit(p.root);
  return [await startRow(paths, options.quick ? 30 : 100), await cpuRow(busy, options.quick ? 4_000 : 10_000)];
}

async function startRow(paths: Paths, n: number): Promise<Row> {
  const mark = `date +%s%3N > "${paths.dir}/started-$DROVER_ITEM"`;
  const { url, token, proc } = await _daemon(paths, { max: 4, command: ["sh", "-c", mark] });
  const latencies: number[] = [];
  for (let i = 0; i < n; i++) {
    const before = Date.now();
    const file = join(paths.dir, `started-${await createItem({ url, token }, `bench ${i}`)}`);
    // the process writes the time it started: how often this looks does not change what is measured
    await until(() => existsSync(file) && readFileSync(file, "utf8").trim());
    latencies.push(Number(readFileSync(file, "utf8")) - before);
  }
  proc.kill("SIGTERM");
  await proc.exited;
  const p99 = percentile(latencies, 99);
  return {
    row: "runners: ready item → its process started (p99)",
    value: p99,
    unit: "ms",
    bar: "p99 < 1,000 ms",
    pass: p99 < 1000,
    detail: `median ${median(latencies)} ms over ${n} items`,
  };
}

async function cpuRow(paths: Paths, windowMs: number): Promise<Row> {
  // 20 agents each printing 10 lines a second: the supervisor reads, logs and parses every one
  const chatty = "while true; do echo working; sleep 0.1; done";
  const { url, token, proc } = await _daemon(paths, { max: 20, command: ["sh", "-c", chatty] });
  for (let i = 0; i < 20; i++) await createItem({ url, token }, `busy ${i}`);
  await until(async () => (await api(url, token, "/api/runs?state=running")).body.length === 20, 20_000);
  await Bun.sleep(1000);
  const before = _cpuTicks(proc.pid);
  await Bun.sleep(windowMs);
  const share = (_cpuTicks(proc.pid) - before) / 100 / (windowMs / 1000); // USER_HZ is 100 on Linux
  proc.kill("SIGTERM");
  await proc.exited;
  const percent = round(share * 100, 2);
  return {
    row: "runners: supervisor CPU with 20 runs at once",
    value: percent,
    unit: "% of a core",
    bar: "< 5 %",
    pass: percent < 5,
    detail: `20 runs × 10 lines/s, ${windowMs / 1000} s window`,
  };
}

async function _daemon(paths: Paths, runner: { max: number; command: string[] }) {
  await writeRunner(paths, { name: "bench", ...runner });
  const { proc, url } = await startBinary(paths);
  const token = readFileSync(paths.token, "utf8").trim();
  return { proc, url, token };
}

/** utime + stime of a process, in clock ticks. */
function _cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

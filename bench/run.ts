/**
 * `npm run bench`: the SPEC §10 rows this build covers, each a median over repeated runs on this machine,
 * printed as a table and written to bench/results.json. Uses the compiled binary (npm run build first).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Paths } from "../core/paths.ts";
import { openRuntime } from "../runtime.ts";
import { gatewayRow } from "./gateway.ts";
import { heartbeatRows } from "./heartbeats.ts";
import { BINARY, cleanups, freePort, median, project, ROOT, type Row, renderRows, round, workDir } from "./lib.ts";
import { opsRows } from "./ops.ts";
import { runnerRows } from "./runners.ts";
import { syncRows } from "./sync.ts";
import { timerRows } from "./timers.ts";
import { websocketRow } from "./websocket.ts";

const quick = process.argv.includes("--quick");
/** `--only sync` or `--only local`: the rows of one group (sync rows take ~10 minutes; local ones, ~4). */
const only = process.argv.includes("--only") ? (process.argv[process.argv.indexOf("--only") + 1] ?? null) : null;

if (!existsSync(BINARY)) execFileSync(process.execPath, [join(ROOT, "scripts", "build.ts")], { stdio: "inherit" });
process.env.DROVER_LOG = "error";

const rows: Row[] = [];

try {
  if (!only || only === "sync") rows.push(...(await syncRows({ quick })));
  if (!only || only === "local") await localRows();
} finally {
  for (const c of cleanups) c();
}

console.log(renderRows(rows));
if (!quick) await _saveResults(rows);
process.exit(rows.every((r) => r.pass) ? 0 : 1);

// --- rows ---

async function localRows() {
  rows.push(diskRow());
  const small = await project();
  rows.push(...(await startupRows(small)));
  rows.push(...(await opsRows(small, { quick })));
  rows.push(...(await heartbeatRows(await project(), { quick })));
  rows.push(...(await timerRows(await project(), { quick })));
  rows.push(await gatewayRow({ quick }));
  rows.push(await websocketRow(await project(), { quick }));
  rows.push(...(await runnerRows(await project(), await project(), { quick })));
  const big = await project();
  await seedItems(big, quick ? 2000 : 10_000);
  rows.push(await reconcileRow(big, quick ? 2000 : 10_000));
  rows.push(await cliRow(big, ["items", "list", "--json"], `items list --json, ${quick ? 2000 : 10_000} items`, 150));
  rows.push(
    await cliRow(
      big,
      ["item", "create", "--title", "bench"],
      `item create, ${quick ? 2000 : 10_000} items present`,
      100,
    ),
  );
}

async function startupRows(paths: Paths): Promise<Row[]> {
  const times: number[] = [];
  let rss = 0;
  for (let i = 0; i < (quick ? 3 : 10); i++) {
    const port = await freePort();
    const started = performance.now();
    const proc = Bun.spawn([BINARY, "serve", "--port", String(port)], {
      cwd: paths.root,
      stdout: "ignore",
      stderr: "ignore",
    });
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) break;
      } catch {
        await Bun.sleep(1);
      }
    }
    times.push(performance.now() - started);
    if (i === 0) {
      await Bun.sleep(2000);
      rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]) / 1024;
    }
    proc.kill("SIGTERM");
    await proc.exited;
  }
  const start = round(median(times));
  return [
    { row: "compiled binary: start → /health 200", value: start, unit: "ms", bar: "< 300 ms", pass: start < 300 },
    { row: "compiled binary: idle RSS", value: round(rss), unit: "MB", bar: "< 100 MB", pass: rss < 100 },
  ];
}

async function reconcileRow(paths: Paths, n: number): Promise<Row> {
  const rt = await openRuntime({ paths, mode: "daemon" });
  let events = 0;
  rt.ctx.bus.on("*", () => void events++);
  await rt.reconcile();
  await rt.ctx.bus.idle();
  events = 0;
  const times: number[] = [];
  for (let i = 0; i < (quick ? 3 : 7); i++) {
    const started = performance.now();
    const reports = await rt.reconcile();
    times.push(performance.now() - started);
    if (Object.values(reports).some((r) => "error" in r || r.changed))
      throw new Error(`reconcile changed something: ${JSON.stringify(reports)}`);
  }
  await rt.ctx.bus.idle();
  await rt.close();
  const ms = round(median(times));
  return {
    row: `reconcile, ${n} items, nothing to change`,
    value: ms,
    unit: "ms",
    bar: "< 500 ms, 0 events",
    pass: ms < 500 && events === 0,
    detail: `${events} events`,
  };
}

async function cliRow(paths: Paths, args: string[], name: string, barMs: number): Promise<Row> {
  const times: number[] = [];
  for (let i = 0; i < (quick ? 3 : 10); i++) {
    const started = performance.now();
    execFileSync(BINARY, args, { cwd: paths.root, stdio: ["ignore", "ignore", "inherit"] });
    times.push(performance.now() - started);
  }
  const ms = round(median(times));
  return { row: `compiled binary: ${name}`, value: ms, unit: "ms", bar: `< ${barMs} ms wall`, pass: ms < barMs };
}

/** Not a bar: what one small file create + rename costs on this disk right now, to read the other rows by. */
function diskRow(): Row {
  const dir = join(workDir(), `disk-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const started = performance.now();
  for (let i = 0; i < 500; i++) {
    writeFileSync(join(dir, `f${i}.tmp`), "x".repeat(300));
    renameSync(join(dir, `f${i}.tmp`), join(dir, `f${i}`));
  }
  const ms = round((performance.now() - started) / 500, 3);
  rmSync(dir, { recursive: true, force: true });
  return { row: "this disk: one small file create + rename (context)", value: ms, unit: "ms", bar: "—", pass: true };
}

// --- helpers ---

async function seedItems(paths: Paths, n: number) {
  const rt = await openRuntime({ paths, mode: "cli" });
  for (let done = 0; done < n; done += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, n - done) }, (_, i) =>
        rt.ops.run("item.create", { title: `seed ${done + i}`, labels: ["seed"] }),
      ),
    );
  }
  await rt.close();
}

/** Writes the rows into bench/results.json, replacing earlier figures of the same rows; each row says when it ran. */
async function _saveResults(fresh: Row[]) {
  const file = join(ROOT, "bench", "results.json");
  const at = new Date().toISOString();
  const saved: Array<Row & { at?: string }> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).rows : [];
  const merged = new Map(saved.map((r) => [r.row, r]));
  for (const r of fresh) merged.set(r.row, { ...r, at });
  await Bun.write(file, JSON.stringify({ at, rows: [...merged.values()] }, null, 2) + "\n");
}

/**
 * @module Starting a run and cleaning up after runs: the item's worktree (no worktree, no run — never in the
 * user's checkout), the row in `state.db`, the prompt, the command with its integration, the process; the runs a
 * dead daemon left behind; old logs.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { iso } from "../../core/clock.ts";
import { readDaemon } from "../../core/daemon-file.ts";
import type { Context } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import { processAlive, processStart, signalGroup } from "../../core/process.ts";
import type { Runner } from "./contract.ts";
import { endRunOf, type LiveRun } from "./endings.ts";
import { createOutputReader } from "./output.ts";
import { runCommand } from "./presets.ts";
import { startProcess } from "./process.ts";
import { renderPrompt } from "./prompt.ts";
import { forgetLog, insertRun, listRuns, oldLogs, setPid } from "./store.ts";

/** After SIGTERM, a run has this long to end before SIGKILL. */
export const STOP_GRACE_MS = 10_000;
/** Logs of ended runs kept on disk (their rows stay). */
const KEPT_LOGS = 200;

export interface RunSpec {
  runner: string;
  spec: Runner;
  agent: string;
  item: { id: string; title: string; body: string; stage: string; fence: number };
  fence: number;
}

export type Exit = { exitCode: number | null; signal: string | null };

/** Starts a run for a slot that was just given `item`; `exited` resolves when its process has ended. */
export async function launchRun(ctx: Context, run: RunSpec): Promise<{ live: LiveRun; exited: Promise<Exit> }> {
  const { item, cwd, startError } = await _workplace(ctx, run);
  const id = `run-${randomBase32(8)}`;
  const logDir = join(ctx.paths.dir, "runs");
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const log = join(logDir, `${id}.log`);
  const now = ctx.clock.now();
  const { agent, fence } = run;
  const row = { run: id, runner: run.runner, agent_id: agent, item_id: item.id, stage: item.stage, fence, cwd, log };
  insertRun(ctx.db, { ...row, pid: null, pid_start: null, started_at: iso(now) });
  const reader = createOutputReader(() => ctx.clock.now());
  const live: LiveRun = {
    row,
    runner: run.spec,
    reader,
    started: now,
    activity: now,
    beat: now,
    ownBeat: null,
    stopping: null,
  };
  if (startError) {
    live.startError = startError;
    return { live, exited: Promise.resolve({ exitCode: null, signal: null }) };
  }
  const prompt = renderPrompt(run.spec.prompt, { item, agent, worktree: cwd });
  const command = runCommand(run.spec, { run: id, agent, item, fence, worktree: cwd, prompt, ..._daemonAddress(ctx) });
  try {
    const proc = startProcess({
      ...command,
      cwd,
      log,
      onLine(line) {
        live.activity = ctx.clock.now();
        reader.line(line);
      },
    });
    live.proc = proc;
    setPid(ctx.db, id, proc.pid, processStart(proc.pid));
    ctx.bus.publish("run_started", {
      run: id,
      runner: run.runner,
      agent_id: agent,
      item_id: item.id,
      pid: proc.pid,
      cwd,
    });
    return { live, exited: proc.exited };
  } catch (err) {
    live.startError = (err as Error).message; // the command is not there, or not executable
    return { live, exited: Promise.resolve({ exitCode: null, signal: null }) };
  }
}

/** Runs left `running` by a daemon that died: a live one is stopped (its group), then each is ended, its item released. */
export async function recoverOrphans(ctx: Context): Promise<number> {
  const left = listRuns(ctx.db, { state: "running", limit: 10_000 });
  for (const row of left) {
    if (row.pid && processAlive(row.pid, row.pid_start)) {
      signalGroup(row.pid, "SIGTERM");
      const deadline = Date.now() + STOP_GRACE_MS;
      while (processAlive(row.pid, row.pid_start) && Date.now() < deadline) await Bun.sleep(50);
      signalGroup(row.pid, "SIGKILL");
    }
    const now = ctx.clock.now();
    const live: LiveRun = {
      row,
      runner: ctx.config.runners[row.runner] ?? null,
      reader: createOutputReader(),
      started: Date.parse(row.started_at),
      activity: now,
      beat: now,
      ownBeat: null,
      stopping: { reason: "orphaned", at: now, killed: true },
    };
    await endRunOf(ctx, live, { exitCode: null, signal: null });
  }
  return left.length;
}

/** Deletes the logs of ended runs past the newest KEPT_LOGS. */
export function pruneLogs(ctx: Context): void {
  for (const log of oldLogs(ctx.db, KEPT_LOGS)) {
    rmSync(log, { force: true });
    forgetLog(ctx.db, log);
  }
}

// --- internal ---

/** Where the run works: in `coding`, the item's worktree, made now (or why it cannot be); later, the one left. */
async function _workplace(
  ctx: Context,
  run: RunSpec,
): Promise<{ item: RunSpec["item"]; cwd: string; startError?: string }> {
  const { item } = run;
  const kept = join(ctx.paths.worktrees, item.id);
  if (item.stage !== "coding" || !ctx.config.pipeline.worktrees)
    return { item, cwd: existsSync(kept) ? kept : ctx.paths.root };
  try {
    const started = await ctx.ops.call("item.start", { id: item.id, agent: run.agent });
    if (started.path) return { item: started.item, cwd: started.path };
    return {
      item,
      cwd: ctx.paths.root,
      startError: `Cannot make the worktree of item "${item.id}": it is not held here`,
    };
  } catch (err) {
    return { item, cwd: ctx.paths.root, startError: (err as Error).message };
  }
}

/** Where the run's MCP calls and CLI go: this daemon, as `daemon.json` names it. */
function _daemonAddress(ctx: Context): { url: string; token: string } {
  const { host, port } = ctx.config.server;
  const url = readDaemon(ctx.paths)?.url ?? `http://${host}:${port}`;
  let token = "";
  try {
    token = readFileSync(ctx.paths.token, "utf8").trim();
  } catch {
    // no token yet: the run's calls will be refused, and it fails visibly
  }
  return { url, token };
}

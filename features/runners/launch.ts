/**
 * @module Starting a run and cleaning up after runs: the item's worktree (no worktree, no run — never in the
 * user's checkout), the row in `state.db`, the prompt, the command with its integration, the process; the runs a
 * dead daemon left behind; old logs.
 */
import { lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { Context } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import { processAlive, processStart, signalGroup } from "../../core/process.ts";
import type { Runner } from "./contract.ts";
import { endRunOf, type LiveRun } from "./endings.ts";
import { createOutputReader } from "./output.ts";
import { runCommand } from "./presets.ts";
import { type Exit, startProcess } from "./process.ts";
import { renderPrompt } from "./prompt.ts";
import { forgetEndedRuns, forgetLog, insertRun, listRuns, oldLogs, type RunRow, setPid } from "./store.ts";

/** After SIGTERM, a run has this long to end before SIGKILL. */
export const STOP_GRACE_MS = 10_000;
/** Logs of ended runs kept on disk (their rows stay, up to KEPT_RUNS). */
const KEPT_LOGS = 200;
/** Rows of ended runs kept in `state.db`: the history `runs.list` shows and the attempts counted. */
const KEPT_RUNS = 10_000;

export interface RunSpec {
  runner: string;
  spec: Runner;
  agent: string;
  item: { id: string; title: string; body: string; stage: string; fence: number };
  fence: number;
}

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

/**
 * Runs left `running` by a daemon that died: the live ones are stopped together (their groups: SIGTERM, one shared
 * grace, SIGKILL to what is left), then each is ended and its item released.
 */
export async function recoverOrphans(ctx: Context): Promise<number> {
  const left = listRuns(ctx.db, { state: "running", limit: 10_000 });
  const live = left.filter((row): row is RunRow & { pid: number } => _alive(row));
  for (const row of live) signalGroup(row.pid, "SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  while (live.some(_alive) && Date.now() < deadline) await Bun.sleep(50);
  // the group, not only a leader still alive: what it started must not go on working on an unrenewed claim
  for (const row of live) signalGroup(row.pid, "SIGKILL");
  for (const row of left) {
    const runner = ctx.config.runners[row.runner] ?? null;
    await endRunOf(ctx, { row, runner, stopping: { reason: "orphaned" } }, { exitCode: null, signal: null });
  }
  return left.length;
}

/** Deletes the logs of ended runs past the newest KEPT_LOGS, and their rows past the newest KEPT_RUNS. */
export function pruneLogs(ctx: Context): void {
  for (const log of oldLogs(ctx.db, KEPT_LOGS)) {
    rmSync(log, { force: true });
    forgetLog(ctx.db, log);
  }
  forgetEndedRuns(ctx.db, KEPT_RUNS);
}

// --- internal ---

/**
 * Where the run works: in `coding`, the item's worktree, made now; in a later stage, the one its coding left.
 * Without one (worktrees off, none left) it does not start: never in the user's own checkout.
 */
async function _workplace(
  ctx: Context,
  run: RunSpec,
): Promise<{ item: RunSpec["item"]; cwd: string; startError?: string }> {
  const { item } = run;
  if (!ctx.config.pipeline.worktrees)
    return { item, cwd: "", startError: `Cannot run item "${item.id}" without its worktree: worktrees are off` };
  if (item.stage !== "coding") {
    // the worktrees feature makes worktrees only in coding and has no op answering where one is: its place is known
    const kept = join(ctx.paths.worktrees, item.id);
    if (_isFolder(kept)) return { item, cwd: kept };
    return { item, cwd: "", startError: `Cannot run item "${item.id}" in ${item.stage}: it has no worktree here` };
  }
  try {
    const started = await ctx.ops.call("item.start", { id: item.id, agent: run.agent });
    if (started.path) return { item: started.item, cwd: started.path };
    return { item, cwd: "", startError: `Cannot make the worktree of item "${item.id}": it is not held here` };
  } catch (err) {
    return { item, cwd: "", startError: (err as Error).message };
  }
}

/** A folder, not a link to one: a link planted there could lead the run into any checkout. */
function _isFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function _alive(row: Pick<RunRow, "pid" | "pid_start">): boolean {
  return row.pid !== null && processAlive(row.pid, row.pid_start);
}

/** Where the run's MCP calls and CLI go: this daemon, as `daemon.json` names it. */
function _daemonAddress(ctx: Context): { url: string; token: string } {
  if (!ctx.endpoint) throw new DroverError("internal", "Cannot start a run outside the daemon: it has no address");
  return ctx.endpoint;
}

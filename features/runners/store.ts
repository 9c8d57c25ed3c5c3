/**
 * @module The runs this machine started, in `state.db`: what the supervisor needs after a daemon died without
 * stopping them (pid and its start time), and what `runs.list` and the endings table read (a run's item, its
 * reason, its usage). Local to this machine: other machines' runs are theirs.
 */
import type { Database } from "bun:sqlite";
import type { RunEnding, RunUsage } from "./contract.ts";

export const runMigrations = [
  `CREATE TABLE runs (run TEXT PRIMARY KEY, runner TEXT NOT NULL, agent_id TEXT NOT NULL, item_id TEXT NOT NULL,
     stage TEXT NOT NULL, fence INTEGER NOT NULL, cwd TEXT NOT NULL, log TEXT NOT NULL, pid INTEGER, pid_start TEXT,
     state TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, exit_code INTEGER, reason TEXT, usage TEXT);
   CREATE INDEX runs_by_item ON runs (item_id, started_at);
   CREATE INDEX runs_by_state ON runs (state);`,
  // newest first, filtered by state or not, without sorting the table on every read
  `CREATE INDEX runs_by_state_started ON runs (state, started_at);
   CREATE INDEX runs_by_started ON runs (started_at);
   DROP INDEX runs_by_state;`,
] as const;

export interface RunRow {
  run: string;
  runner: string;
  agent_id: string;
  item_id: string;
  /** The item's stage when the run started: a run whose item left it was moved by its agent. */
  stage: string;
  fence: number;
  cwd: string;
  log: string;
  pid: number | null;
  pid_start: string | null;
  state: "running" | "ended";
  started_at: string;
  ended_at: string | null;
  exit_code: number | null;
  reason: RunEnding | null;
  usage: RunUsage | null;
}

/** Endings that count as a failed attempt of the item (`max_attempts`). */
export const FAILURES: ReadonlySet<RunEnding> = new Set(["failed", "crashed", "timeout", "stuck", "not_started"]);

export function insertRun(db: Database, row: Omit<RunRow, "state" | "ended_at" | "exit_code" | "reason" | "usage">) {
  db.query(
    `INSERT INTO runs (run, runner, agent_id, item_id, stage, fence, cwd, log, pid, pid_start, state, started_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)`,
  ).run(
    row.run,
    row.runner,
    row.agent_id,
    row.item_id,
    row.stage,
    row.fence,
    row.cwd,
    row.log,
    row.pid,
    row.pid_start,
    row.started_at,
  );
}

export function setPid(db: Database, run: string, pid: number, start: string | null): void {
  db.query("UPDATE runs SET pid = ?, pid_start = ? WHERE run = ?").run(pid, start, run);
}

export function endRun(
  db: Database,
  run: string,
  ending: { at: string; exitCode: number | null; reason: RunEnding; usage: RunUsage | null },
): void {
  db.query("UPDATE runs SET state = 'ended', ended_at = ?, exit_code = ?, reason = ?, usage = ? WHERE run = ?").run(
    ending.at,
    ending.exitCode,
    ending.reason,
    ending.usage ? JSON.stringify(ending.usage) : null,
    run,
  );
}

export function getRun(db: Database, run: string): RunRow | null {
  const row = db.query<_Raw, [string]>("SELECT * FROM runs WHERE run = ?").get(run);
  return row ? _parse(row) : null;
}

export function listRuns(db: Database, filter: { state?: string; item?: string; limit: number }): RunRow[] {
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (filter.state) where.push("state = ?") && params.push(filter.state);
  if (filter.item) where.push("item_id = ?") && params.push(filter.item);
  const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
               ORDER BY started_at DESC, rowid DESC LIMIT ?`;
  return db
    .query<_Raw, Array<string | number>>(sql)
    .all(...params, filter.limit)
    .map(_parse);
}

/** How many of the item's latest runs in a row failed (a success, a move or a stop ends the count). */
export function failuresInARow(db: Database, itemId: string): number {
  const reasons = db
    .query<{ reason: RunEnding | null }, [string]>(
      "SELECT reason FROM runs WHERE item_id = ? AND state = 'ended' ORDER BY started_at DESC, rowid DESC LIMIT 100",
    )
    .all(itemId);
  let n = 0;
  for (const { reason } of reasons) {
    if (reason === "rate_limited") continue; // not the item's fault: neither a failure nor a success
    if (!reason || !FAILURES.has(reason)) break;
    n++;
  }
  return n;
}

/** How many of the agent's latest runs in a row hit a rate limit (the backoff grows with it). */
export function rateLimitsInARow(db: Database, agentId: string): number {
  const reasons = db
    .query<{ reason: string | null }, [string]>(
      "SELECT reason FROM runs WHERE agent_id = ? AND state = 'ended' ORDER BY started_at DESC, rowid DESC LIMIT 20",
    )
    .all(agentId);
  let n = 0;
  while (n < reasons.length && reasons[n]!.reason === "rate_limited") n++;
  return n;
}

/** Logs of ended runs past the newest `keep`, for the caller to delete (then `forgetLog`). */
export function oldLogs(db: Database, keep: number): string[] {
  return db
    .query<{ log: string }, [number]>(
      "SELECT log FROM runs WHERE state = 'ended' AND log != '' ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?",
    )
    .all(keep)
    .map((r) => r.log);
}

export function forgetLog(db: Database, log: string): void {
  db.query("UPDATE runs SET log = '' WHERE log = ?").run(log);
}

/** Deletes the rows of ended runs past the newest `keep` (their logs went long before). */
export function forgetEndedRuns(db: Database, keep: number): void {
  db.query(
    `DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE state = 'ended'
       ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?)`,
  ).run(keep);
}

// --- internal ---

type _Raw = Omit<RunRow, "usage"> & { usage: string | null };

function _parse(row: _Raw): RunRow {
  return { ...row, usage: row.usage ? (JSON.parse(row.usage) as RunUsage) : null };
}

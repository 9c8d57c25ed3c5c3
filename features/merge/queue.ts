/**
 * @module The merge queue of this machine: items whose branch it holds, landed one at a time in order of arrival
 * (SPEC §14). Each merge is tried until it lands, fails (a conflict or a red check: back to coding with a note, or
 * `blocked` after `max_failures` in a row) or has to wait (the checkout has local changes, the remote refused the
 * push: tried again every few seconds). The commit about to land is recorded, with the branch's commit it lands,
 * before the base moves, so a restart after a `kill -9` finishes a merge that landed instead of landing it twice.
 * The check's timeout follows the clock: the tick stops a check past it.
 */
import { join } from "node:path";
import { iso } from "../../core/clock.ts";
import type { Context } from "../../core/feature.ts";
import { baseBranch, commitOf, git, gitRun } from "../../core/git.ts";
import { itemBranch } from "../../core/ids.ts";
import { TRUST_COMMAND } from "../../core/trust.ts";
import { MERGE_TRUST } from "./contract.ts";
import { committer, type LandResult, landOnce, onBase } from "./land.ts";

export const queueMigrations = [
  `CREATE TABLE merge_queue (item_id TEXT PRIMARY KEY, state TEXT NOT NULL, enqueued_at TEXT NOT NULL,
     landing TEXT, reason TEXT);
   CREATE TABLE merge_results (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, at TEXT NOT NULL,
     result TEXT NOT NULL, sha TEXT, detail TEXT);
   CREATE INDEX merge_results_by_item ON merge_results (item_id, id);`,
  // the branch's commit a recorded landing lands: a restart points a squashed or rebased branch at the landing
  "ALTER TABLE merge_queue ADD COLUMN landing_tip TEXT",
] as const;

/** Attempts of one merge whose base kept moving before it is left waiting. */
const MAX_RETRIES = 5;
/** A waiting merge is tried again this often (clock). */
const WAIT_RETRY_MS = 5_000;

export interface QueueRow {
  item_id: string;
  state: "queued" | "running" | "waiting";
  enqueued_at: string;
  landing: string | null;
  reason: string | null;
  landing_tip: string | null;
}

export interface MergeQueue {
  /** Adds the item (once); false when it is queued already. */
  enqueue(itemId: string): boolean;
  /** Works through the queue; one run at a time per process. */
  drain(): Promise<void>;
  /** Per tick: retries waiting merges whose time has come. */
  tick(): void;
  rows(): QueueRow[];
  results(limit: number): Array<{ item_id: string; at: string; result: string; sha: string | null; detail: unknown }>;
}

export function createMergeQueue(ctx: Context): MergeQueue {
  let draining: Promise<void> | null = null;
  let lastWaitRetry = 0;
  /** The check running now and when it is stopped (by the tick). */
  let check: { deadline: number; stop(): void } | null = null;
  const onCheck = (stop: (() => void) | null) => {
    check = stop && { deadline: ctx.clock.now() + ctx.config.merge.check_timeout_mins * 60_000, stop };
  };

  async function drainOnce(): Promise<void> {
    const run: _Run = { identity: null, onCheck };
    for (;;) {
      const next = ctx.db
        .query<QueueRow, []>(
          "SELECT * FROM merge_queue WHERE state IN ('queued', 'running') ORDER BY enqueued_at, rowid LIMIT 1",
        )
        .get();
      if (!next) return;
      await _mergeOne(ctx, next, run).catch((err: Error) => {
        // it waits and is tried again every few seconds: said once, not at every try
        ctx.log.warnOnce(`merge:${next.item_id}:${err.message}`, `Merge of item "${next.item_id}" failed`, {
          error: err,
        });
        _wait(ctx, next.item_id, err.message);
      });
    }
  }

  return {
    enqueue(itemId) {
      const r = ctx.db
        .query("INSERT OR IGNORE INTO merge_queue (item_id, state, enqueued_at) VALUES (?, 'queued', ?)")
        .run(itemId, iso(ctx.clock.now()));
      return r.changes > 0;
    },
    async drain() {
      if (ctx.mode !== "daemon") return; // a CLI process queues; the daemon merges
      draining ??= drainOnce().finally(() => {
        draining = null;
      });
      return draining;
    },
    tick() {
      const now = ctx.clock.now();
      if (check && now >= check.deadline) {
        check.stop();
        check = null;
      }
      if (now - lastWaitRetry < WAIT_RETRY_MS) return;
      lastWaitRetry = now;
      const woke = ctx.db.query("UPDATE merge_queue SET state = 'queued' WHERE state = 'waiting'").run();
      if (woke.changes) void this.drain();
    },
    rows() {
      return ctx.db.query<QueueRow, []>("SELECT * FROM merge_queue ORDER BY enqueued_at, rowid").all();
    },
    results(limit) {
      return ctx.db
        .query<{ item_id: string; at: string; result: string; sha: string | null; detail: string | null }, [number]>(
          "SELECT item_id, at, result, sha, detail FROM merge_results ORDER BY id DESC LIMIT ?",
        )
        .all(limit)
        .map((r) => ({ ...r, detail: r.detail ? JSON.parse(r.detail) : null }));
    },
  };
}

// --- internal ---

/** What one run through the queue shares: the committer options (asked once a run), and the check's keeper. */
interface _Run {
  identity: string[] | null;
  onCheck(stop: (() => void) | null): void;
}

async function _mergeOne(ctx: Context, row: QueueRow, run: _Run): Promise<void> {
  const item = await ctx.ops.call("item.get", { id: row.item_id }).catch(() => null);
  if (item?.stage !== "merge") {
    _dequeue(ctx, row.item_id); // moved on meanwhile (by hand, or merged elsewhere)
    return;
  }
  const waits = _neverApproved(ctx);
  if (waits.length)
    return _wait(ctx, row.item_id, `${waits.join(" and ")} wait for this machine's approval: run "${TRUST_COMMAND}"`);
  const { merge } = ctx.config;
  const { root } = ctx.paths;
  const base = baseBranch(root, { key: "pipeline.base_branch", value: ctx.config.pipeline.base_branch });
  const branch = itemBranch(item.id);
  ctx.db.query("UPDATE merge_queue SET state = 'running' WHERE item_id = ?").run(item.id);
  // a restart after the base moved to the recorded commit: it landed
  if (row.landing && (await onBase(root, base, row.landing)))
    return _landed(ctx, item, { base, sha: row.landing, branch, tip: row.landing_tip });
  run.identity ??= await committer(root);
  let started = false;
  let result: LandResult = { kind: "retry", reason: "not tried" };
  for (let attempt = 0; attempt < MAX_RETRIES && result.kind === "retry"; attempt++) {
    result = await landOnce({
      root,
      base,
      branch,
      strategy: merge.strategy,
      message: merge.strategy === "merge" ? `Merge item ${item.id}: ${item.title}` : `${item.title} (item ${item.id})`,
      check: merge.check,
      identity: run.identity,
      push: merge.push ? _remoteOf(ctx, base) : null,
      scratch: join(ctx.paths.dir, "merge", item.id),
      networkTimeoutMs: ctx.config.hub.network_timeout_secs * 1000,
      onStarted() {
        if (started) return; // a retry is the same merge
        started = true;
        ctx.bus.publish("merge_started", { item_id: item.id, base, strategy: merge.strategy });
      },
      onCheck: run.onCheck,
      proceed: async () => (await ctx.ops.call("item.get", { id: item.id }).catch(() => null))?.stage === "merge",
      onLanding: (sha, tip) =>
        ctx.db.query("UPDATE merge_queue SET landing = ?, landing_tip = ? WHERE item_id = ?").run(sha, tip, item.id),
    });
  }
  if (result.kind === "merged") return _landed(ctx, item, { base, sha: result.sha, branch, tip: result.tip });
  if (result.kind === "waiting" || result.kind === "retry") return _wait(ctx, item.id, result.reason);
  await _failed(ctx, item.id, result);
}

async function _landed(
  ctx: Context,
  item: { id: string },
  at: { base: string; sha: string; branch: string; tip: string | null },
) {
  const { strategy } = ctx.config.merge;
  // a squash or rebase lands other commits than the branch's: point the branch at them, so it reads as merged and
  // the worktree rule removes it — only if it is still where it was landed from (commits made since are kept)
  if (strategy !== "merge" && at.tip) {
    const worktree = join(ctx.paths.worktrees, item.id);
    const head = await commitOf(worktree, "HEAD");
    if (head === at.tip) await gitRun(worktree, ["reset", "--keep", at.sha]);
    else if (!head) await gitRun(ctx.paths.root, ["update-ref", `refs/heads/${at.branch}`, at.sha, at.tip]);
  }
  const merged = { sha: at.sha, base: at.base, strategy };
  await ctx.ops.call("item.move", { id: item.id, to: "done", merged, reason: `merged into ${at.base}` });
  _record(ctx, item.id, "merged", at.sha, null);
  _dequeue(ctx, item.id);
  ctx.bus.publish("merged", { item_id: item.id, ...merged });
}

async function _failed(ctx: Context, itemId: string, result: Extract<LandResult, { kind: "conflict" | "check" }>) {
  const detail =
    result.kind === "conflict" ? { files: result.files } : { exit_code: result.exitCode, tail: result.tail };
  _record(ctx, itemId, result.kind, null, detail);
  _dequeue(ctx, itemId);
  const blocked = _failuresInARow(ctx, itemId) >= ctx.config.merge.max_failures;
  const text =
    result.kind === "conflict"
      ? `Merge into the base failed: conflicts in ${result.files.map((f) => `"${f}"`).join(", ")}. ${ctx.config.merge.strategy === "rebase" ? "Rebase this branch onto the base" : "Merge the base into this branch"} and resolve them.`
      : `Merge check failed (exit ${result.exitCode ?? "none: it was stopped"}) in the merged tree. The end of its output:\n${result.tail}`;
  await ctx.ops.call("item.note", { id: itemId, text: text.slice(0, 4000) });
  await ctx.ops.call("item.move", { id: itemId, to: blocked ? "blocked" : "coding", reason: `merge ${result.kind}` });
  ctx.bus.publish("merge_failed", { item_id: itemId, kind: result.kind, ...detail, blocked });
}

function _wait(ctx: Context, itemId: string, reason: string): void {
  const before = ctx.db
    .query<{ reason: string | null }, [string]>("SELECT reason FROM merge_queue WHERE item_id = ?")
    .get(itemId);
  ctx.db.query("UPDATE merge_queue SET state = 'waiting', reason = ? WHERE item_id = ?").run(reason, itemId);
  if (before?.reason !== reason) ctx.bus.publish("merge_waiting", { item_id: itemId, reason });
}

function _dequeue(ctx: Context, itemId: string): void {
  ctx.db.query("DELETE FROM merge_queue WHERE item_id = ?").run(itemId);
}

function _record(ctx: Context, itemId: string, result: string, sha: string | null, detail: unknown): void {
  ctx.db
    .query("INSERT INTO merge_results (item_id, at, result, sha, detail) VALUES (?, ?, ?, ?, ?)")
    .run(itemId, iso(ctx.clock.now()), result, sha, detail === null ? null : JSON.stringify(detail));
}

function _failuresInARow(ctx: Context, itemId: string): number {
  const results = ctx.db
    .query<{ result: string }, [string]>(
      "SELECT result FROM merge_results WHERE item_id = ? ORDER BY id DESC LIMIT 100",
    )
    .all(itemId);
  let n = 0;
  while (n < results.length && results[n]!.result !== "merged") n++;
  return n;
}

/**
 * The keys of `[merge]` whose committed value waits for approval and of which this machine never approved any: the
 * default (no check, no push) would be in force, and landing unchecked or unpushed is worse than waiting. Once one
 * was approved it stays in force meanwhile (SPEC §12: `ctx.config` holds it) and merges go on with it — told apart
 * by the value in force having effects, which only an approved one can (the defaults have none).
 */
function _neverApproved(ctx: Context): string[] {
  return ctx.untrusted.filter((u) => MERGE_TRUST[u.key] && !MERGE_TRUST[u.key]!(u.using)).map((u) => u.key);
}

/** The remote the base is pushed to: its upstream's, else `origin`. */
function _remoteOf(ctx: Context, base: string): string {
  const configured = git(ctx.paths.root, ["config", "--get", `branch.${base}.remote`]);
  // a name git could read as an option is no remote drover pushes to
  return configured.ok && /^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(configured.out) ? configured.out : "origin";
}

/**
 * @module Feature `sync`: the hub (`.drover/hub`, branch `drover/hub`), its one writer, the outbox, the audit
 * log, and the rounds that carry ops to the project's git remote. Other features reach the hub as
 * `ctx.services.hub` and sync as `ctx.services.sync`.
 */
import { Hono } from "hono";
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { checkBranchName } from "../../core/git.ts";
import { defineFeature, defineOp, type Context } from "../../core/feature.ts";
import { httpOp } from "../../server/routes.ts";
import { parseCommitMessage } from "./apply.ts";
import { createSync, type SyncService } from "./cycle.ts";
import { createHub, type Hub } from "./hub.ts";
import { opsMissingFrom, opsOf, readTrackedHead, requeue } from "./history.ts";
import { createLayout } from "./layout.ts";
import { openRepo } from "./repo.ts";
import { isRemoteName } from "./transport.ts";

declare module "../../core/feature.ts" {
  interface Services {
    hub: Hub;
    sync: SyncService;
  }
}

/** A local op wakes a round this soon (ops that arrive meanwhile ride along in the same commit). */
const DEBOUNCE_MS = 100;

const logInput = z.strictObject({
  item: z.string().max(64).optional().describe("Only ops on this item"),
  limit: z.number().int().min(1).max(10_000).default(50).describe("How many ops, newest first"),
});

export default defineFeature({
  name: "sync",
  // a URL or path (not a remote name, which this machine's git config resolves) decides where the hub and
  // DROVER_GIT_TOKEN go
  trust: { "hub.remote": (v) => typeof v === "string" && v !== "" && !isRemoteName(v) },
  migrations: [
    `CREATE TABLE hub_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, commit_oid TEXT NOT NULL,
       status TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ')));
     CREATE INDEX outbox_status ON outbox (status);
     CREATE TABLE hub_invalid (path TEXT PRIMARY KEY, reason TEXT NOT NULL, digest TEXT NOT NULL, seen_at TEXT NOT NULL);`,
    `ALTER TABLE outbox ADD COLUMN op_id TEXT;
     ALTER TABLE outbox ADD COLUMN name TEXT;
     ALTER TABLE outbox ADD COLUMN code TEXT;
     ALTER TABLE outbox ADD COLUMN reason TEXT;
     ALTER TABLE outbox ADD COLUMN decided_at TEXT;
     UPDATE outbox SET status = 'unreplayable' WHERE status = 'pending';
     CREATE UNIQUE INDEX outbox_op_id ON outbox (op_id);`,
    // a keyed op's answer, recorded with its commit (core/idempotency.ts)
    `CREATE TABLE hub_keys (key TEXT PRIMARY KEY, op_id TEXT NOT NULL, result TEXT NOT NULL, at INTEGER NOT NULL);
     CREATE INDEX hub_keys_at ON hub_keys (at);`,
  ],
  async setup(ctx) {
    const repo = await openRepo(ctx.paths.hub, checkBranchName(ctx.config.hub.branch, "hub.branch"), {
      layout: createLayout(["meta.json"]),
      maxFileBytes: ctx.config.hub.max_file_bytes,
      onRepackError: (err) => ctx.log.warnOnce("repack", `Cannot repack the hub: ${err.message}`),
    });
    const hub = createHub(repo, {
      db: ctx.db,
      bus: ctx.bus,
      clock: ctx.clock,
      log: ctx.log.child("hub"),
      machineId: ctx.machineId,
      lockFile: ctx.paths.lock,
      hasRemote: () => ctx.config.hub.remote !== "",
    });
    ctx.services.hub = hub;
    ctx.services.sync = createSync(ctx, hub);
    hub.define("init", (_args, tx) => {
      if (tx.read("meta.json") === null) tx.write("meta.json", { format: 1 });
    });
    const head = await repo.head();
    if (!head) await hub.run("init", {});
    // a state.db made anew (found damaged, or deleted) lost the outbox: this machine's ops the remote may lack go
    // back in it, and the next round confirms those it already has
    else if (ctx.config.hub.remote && hub.state("applied_head") === null) {
      const tracked = readTrackedHead(repo);
      const lost = tracked ? await opsMissingFrom(repo, { local: head, remote: tracked, machineId: ctx.machineId }) : await opsOf(repo, head, ctx.machineId);
      if (lost.length) requeue(ctx.db, lost, head);
    }
  },
  ops: {
    log: defineOp({
      writes: false,
      description: "The hub's history of applied ops, newest first",
      input: logInput,
      async run(ctx, input) {
        return readLog(ctx, input);
      },
      view: { columns: ["at", "op", "args.id", "machine_id", "commit"] },
    }),
    "sync.now": defineOp({
      writes: true,
      description: "Sync with the remote now: fetch, replay waiting ops, push",
      input: z.strictObject({}),
      async run(ctx) {
        if (!ctx.config.hub.remote) throw new DroverError("bad_config", "Cannot sync: the hub is local only (hub.remote is empty)");
        const { fetched, pushed, confirmed, rejected, head } = await ctx.services.sync.round({ force: true });
        return { fetched, pushed, confirmed, rejected, head };
      },
    }),
    "sync.status": defineOp({
      writes: false,
      description: "Where the hub stands: remote, branch, head and ops waiting to be carried",
      input: z.strictObject({}),
      async run(ctx) {
        const sync = ctx.services.sync;
        return {
          remote: ctx.config.hub.remote || null,
          branch: ctx.config.hub.branch,
          head: await ctx.services.hub.repo.head(),
          remote_head: sync.state("remote_head"),
          last_sync_at: sync.state("last_sync_at"),
          pending_ops: sync.pendingCount(),
          last_error: sync.state("last_error"),
          diverged: _json(sync.state("diverged")),
          invalid_files: ctx.services.hub.invalidFiles(),
          stats: sync.stats,
        };
      },
    }),
    "sync.adopt": defineOp({
      writes: true,
      cliOnly: true,
      description: "After the remote's hub branch was rewritten: take its history; this machine's ops it lacks go out again",
      input: z.strictObject({}),
      run: (ctx) => _resolve(ctx, "adopt"),
    }),
    "sync.restore": defineOp({
      writes: true,
      cliOnly: true,
      description: "After the remote's hub branch was rewritten: force this machine's confirmed history back onto it",
      input: z.strictObject({}),
      run: (ctx) => _resolve(ctx, "restore"),
    }),
  },
  handler(ctx) {
    const run = httpOp(ctx);
    return new Hono()
      .get("/api/sync", async (c) => c.json(await run("sync.status", {})))
      .post("/api/sync", async (c) => c.json(await run("sync.now", {})));
  },
  start(ctx) {
    if (!ctx.config.hub.remote) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // ops made in this process go out at once; a CLI's ops are seen by the next tick
    ctx.services.hub.onChange((set) => {
      if (set.origin !== "local" || !set.ops.some((o) => o.op !== "hub.sweep") || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        _round(ctx);
      }, DEBOUNCE_MS);
    });
  },
  tick(ctx) {
    const sync = ctx.services.sync;
    // a remote that is away is asked again after a growing pause, not every second
    if (ctx.mode !== "daemon" || !ctx.config.hub.remote || ctx.clock.now() < sync.retryAt()) return;
    const last = Date.parse(sync.state("last_sync_at") ?? "") || 0;
    const due = ctx.clock.now() - last >= ctx.config.hub.sync_interval_secs * 1000;
    if (due || sync.pendingCount({ presence: false }) > 0) _round(ctx);
  },
  async reconcile(ctx) {
    const files = await ctx.services.hub.catchUp();
    return { changed: files, files, invalid_files: ctx.services.hub.invalidFiles().length };
  },
  stop(ctx) {
    ctx.services.hub.close();
  },
});

export interface LogEntry {
  commit: string;
  at: string;
  op: string;
  args: Record<string, unknown>;
  machine_id: string;
}

/** Reads ops back from the hub's commits, newest first. */
async function readLog(ctx: Context, input: z.output<typeof logInput>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  // every commit carries at least one op, so without a filter `limit` commits are enough
  for (const c of await ctx.services.hub.repo.log({ depth: input.item ? undefined : input.limit })) {
    const ops = parseCommitMessage(c.message).reverse();
    for (const o of ops) {
      if (input.item && o.args.id !== input.item) continue;
      out.push({ commit: c.oid, at: o.at, op: o.op, args: o.args, machine_id: o.machine_id });
      if (out.length >= input.limit) return out;
    }
  }
  return out;
}

async function _resolve(ctx: Context, choice: "adopt" | "restore") {
  if (!ctx.config.hub.remote) throw new DroverError("bad_config", `Cannot ${choice}: the hub is local only (hub.remote is empty)`);
  const { fetched, pushed, confirmed, rejected, head } = await ctx.services.sync.resolve(choice);
  return { fetched, pushed, confirmed, rejected, head };
}

function _json(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

/** A background round: failures are in `sync.status` (`last_error`), not thrown. */
function _round(ctx: Context) {
  ctx.services.sync.round().catch((err) => ctx.log.warnOnce("sync", `Sync failed: ${(err as Error).message}`));
}

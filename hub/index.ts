/**
 * @module The hub layer: `.drover/hub` (branch `drover/hub`), its one writer, the outbox, the audit log, and the
 * mutations every feature's hub ops make. Features reach it as `ctx.hub`; the feature `sync` carries its ops to
 * the project's remote. It comes first in the runtime's list, shaped as a feature: its tables, its event and its
 * `[hub]` keys are declared here, and the contract suite checks it like any feature.
 */
import { z } from "zod";
import { iso } from "../core/clock.ts";
import { escapeControls } from "../core/escape.ts";
import { type Context, defineFeature, defineOp } from "../core/feature.ts";
import { checkBranchName } from "../core/git.ts";
import { parseCommitMessage } from "./apply.ts";
import { hubContract } from "./contract.ts";
import { createLayout } from "./layout.ts";
import { defineMutation, isHubOp } from "./op.ts";
import { openRepo } from "./repo.ts";
import type { Hub } from "./types.ts";
import { createHub } from "./writer.ts";

declare module "../core/feature.ts" {
  interface Context {
    hub: Hub;
  }
  interface OpMap {
    log: typeof log;
  }
}

const logInput = z.strictObject({
  item: z.string().max(64).optional().describe("Only ops on this item"),
  limit: z.number().int().min(1).max(10_000).default(50).describe("How many ops, newest first"),
});

/** The hub's first commit: a marker of its format. */
const initHub = defineMutation("init", {
  args: z.strictObject({}),
  apply(_args, tx) {
    if (tx.read("meta.json") === null) tx.write("meta.json", { format: 1 });
  },
});

const log = defineOp({
  writes: false,
  description: "The hub's history of applied ops, newest first",
  input: logInput,
  http: { method: "GET", path: "/api/log" },
  run: (ctx, input) => readLog(ctx, input),
  view: { columns: ["at", "op", "args.id", "summary", "machine_id", "commit"] },
});

export default defineFeature({
  name: "hub",
  ...hubContract,
  // these tables were made by the feature `sync` before the hub became a layer: their history keeps its name
  migrationsKey: "sync",
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
    // the retention sweep at every reconcile finds the old decided ops through it, not by reading every row
    "CREATE INDEX outbox_decided ON outbox (coalesce(decided_at, created_at)) WHERE status <> 'pending'",
  ],
  async setup(ctx) {
    const repo = await openRepo(ctx.paths.hub, checkBranchName(ctx.config.hub.branch, "hub.branch"), {
      layout: createLayout(["meta.json"]),
      maxFileBytes: ctx.config.hub.max_file_bytes,
      onRepackError: (err) => ctx.log.warnOnce("repack", `Cannot repack the hub: ${err.message}`),
    });
    ctx.hub = createHub(repo, ctx);
    ctx.hub.define(initHub);
    for (const { name, op } of ctx.ops.list()) if (isHubOp(op)) ctx.hub.define({ name, ...op.mutation });
    if (!(await repo.head())) await ctx.hub.run(initHub, {});
  },
  ops: {
    log,
  },
  async reconcile(ctx) {
    const files = await ctx.hub.catchUp();
    const cutoff = iso(ctx.clock.now() - ctx.config.hub.outbox_retention_days * 86_400_000);
    const forgotten = ctx.hub.outbox.forget(cutoff);
    return { changed: files, files, forgotten, invalid_files: ctx.hub.invalidFiles().length };
  },
  stop(ctx) {
    ctx.hub.close();
  },
});

export interface LogEntry {
  commit: string;
  at: string;
  op: string;
  args: Record<string, unknown>;
  /** What the op did, in a few words, as its definition says (`""` when it says nothing). */
  summary: string;
  machine_id: string;
}

/** Reads ops back from the hub's commits, newest first. */
async function readLog(ctx: Context, input: z.output<typeof logInput>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  // every commit carries at least one op, so without a filter `limit` commits are enough
  for (const c of await ctx.hub.repo.log({ depth: input.item ? undefined : input.limit })) {
    const ops = parseCommitMessage(c.message).reverse();
    for (const o of ops) {
      if (input.item && o.args.id !== input.item) continue;
      const summary = _summary(ctx, o.op, o.args);
      out.push({ commit: c.oid, at: o.at, op: o.op, args: o.args, summary, machine_id: o.machine_id });
      if (out.length >= input.limit) return out;
    }
  }
  return out;
}

/** The op's own summary of its args; recorded args are another machine's words, so a failure is just no summary. */
function _summary(ctx: Context, name: string, args: Record<string, unknown>): string {
  const def = ctx.ops.get(name);
  try {
    return def && isHubOp(def) && def.summary ? escapeControls(String(def.summary(args))).slice(0, 200) : "";
  } catch {
    return "";
  }
}

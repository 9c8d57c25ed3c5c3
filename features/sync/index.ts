/**
 * @module Feature `sync`: the hub (`.drover/hub`, branch `drover/hub`), its one writer, the outbox and the
 * audit log. Other features reach the hub as `ctx.services.hub`.
 */
import { Hono } from "hono";
import { z } from "zod";
import { defineFeature, defineOp, type Context } from "../../core/feature.ts";
import { httpOp } from "../../server/routes.ts";
import { createHub, parseCommitMessage, type Hub } from "./hub.ts";
import { openRepo } from "./repo.ts";

declare module "../../core/feature.ts" {
  interface Services {
    hub: Hub;
  }
}

const logInput = z.strictObject({
  item: z.string().max(64).optional().describe("Only ops on this item"),
  limit: z.number().int().min(1).max(10_000).default(50).describe("How many ops, newest first"),
});

export default defineFeature({
  name: "sync",
  migrations: [
    `CREATE TABLE hub_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, commit_oid TEXT NOT NULL,
       status TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ')));
     CREATE INDEX outbox_status ON outbox (status);
     CREATE TABLE hub_invalid (path TEXT PRIMARY KEY, reason TEXT NOT NULL, digest TEXT NOT NULL, seen_at TEXT NOT NULL);`,
  ],
  async setup(ctx) {
    const repo = await openRepo(ctx.paths.hub, ctx.config.hub.branch, {
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
    if (!(await repo.head())) {
      await hub.submit({
        op: { op: "init", args: {} },
        apply(tx) {
          if (tx.read("meta.json") === null) tx.write("meta.json", { format: 1 });
        },
      });
    }
  },
  ops: {
    log: defineOp({
      description: "The hub's history of applied ops, newest first",
      input: logInput,
      async run(ctx, input) {
        return readLog(ctx, input);
      },
      view: { columns: ["at", "op", "args.id", "machine_id", "commit"] },
    }),
    "sync.status": defineOp({
      description: "Where the hub stands: remote, branch, head and ops waiting to be carried",
      input: z.strictObject({}),
      async run(ctx) {
        const pending = ctx.db.query<{ n: number }, []>("SELECT count(*) AS n FROM outbox WHERE status = 'pending'").get()!.n;
        return {
          remote: ctx.config.hub.remote || null,
          branch: ctx.config.hub.branch,
          head: await ctx.services.hub.repo.head(),
          last_sync_at: null,
          pending_ops: pending,
          last_error: null,
          invalid_files: ctx.services.hub.invalidFiles(),
        };
      },
    }),
  },
  handler(ctx) {
    const run = httpOp(ctx);
    return new Hono().get("/api/sync", async (c) => c.json(await run("sync.status", {})));
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

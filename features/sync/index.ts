/**
 * @module Feature `sync`: the rounds that carry the hub's ops to the project's git remote and bring other
 * machines' back — fetch, replay, compare-and-swap push — and the person's choices after a rewrite. It is the
 * hub's carrier: `ctx.hub.confirm` waits on its rounds.
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { type Context, defineFeature, defineOp } from "../../core/feature.ts";
import { syncContract } from "./contract.ts";
import { createSync, type SyncService } from "./cycle.ts";
import { opsMissingFrom, opsOf, readTrackedHead } from "./history.ts";
import { isRemoteName } from "./transport.ts";

declare module "../../core/feature.ts" {
  interface Services {
    sync: SyncService;
  }
}

/** A local op wakes a round this soon (ops that arrive meanwhile ride along in the same commit). */
const DEBOUNCE_MS = 100;

const syncOps = {
  "sync.now": defineOp({
    writes: true,
    description: "Sync with the remote now: fetch, replay waiting ops, push",
    input: z.strictObject({}),
    http: { method: "POST", path: "/api/sync" },
    async run(ctx) {
      if (!ctx.config.hub.remote)
        throw new DroverError("bad_config", "Cannot sync: the hub is local only (hub.remote is empty)");
      const { fetched, pushed, confirmed, rejected, head } = await ctx.services.sync.round({ force: true });
      return { fetched, pushed, confirmed, rejected, head };
    },
  }),
  "sync.status": defineOp({
    writes: false,
    description: "Where the hub stands: remote, branch, head and ops waiting to be carried",
    input: z.strictObject({}),
    http: { method: "GET", path: "/api/sync" },
    async run(ctx) {
      const sync = ctx.services.sync;
      return {
        remote: ctx.config.hub.remote || null,
        branch: ctx.config.hub.branch,
        head: await ctx.hub.repo.head(),
        remote_head: sync.state("remote_head"),
        last_sync_at: sync.state("last_sync_at"),
        pending_ops: sync.pendingCount(),
        last_error: sync.state("last_error"),
        diverged: _json(sync.state("diverged")),
        invalid_files: ctx.hub.invalidFiles(),
        stats: sync.stats,
      };
    },
  }),
  "sync.adopt": defineOp({
    writes: true,
    cliOnly: true,
    description:
      "After the remote's hub branch was rewritten: take its history; this machine's ops it lacks go out again",
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
};

declare module "../../core/feature.ts" {
  interface OpMap {
    "sync.now": (typeof syncOps)["sync.now"];
    "sync.status": (typeof syncOps)["sync.status"];
    "sync.adopt": (typeof syncOps)["sync.adopt"];
    "sync.restore": (typeof syncOps)["sync.restore"];
  }
}

export default defineFeature({
  name: "sync",
  // a URL or path (not a remote name, which this machine's git config resolves) decides where the hub and
  // DROVER_GIT_TOKEN go
  trust: { "hub.remote": (v) => typeof v === "string" && v !== "" && !isRemoteName(v) },
  ...syncContract,
  async setup(ctx) {
    ctx.services.sync = createSync(ctx);
    ctx.hub.setCarrier(ctx.services.sync);
    // a state.db made anew (found damaged, or deleted) lost the outbox: this machine's ops the remote may lack go
    // back in it, and the next round confirms those it already has
    const { repo } = ctx.hub;
    const head = await repo.head();
    if (head && ctx.config.hub.remote && ctx.hub.state("applied_head") === null) {
      const tracked = readTrackedHead(repo);
      const lost = tracked
        ? await opsMissingFrom(repo, { local: head, remote: tracked, machineId: ctx.machineId })
        : await opsOf(repo, head, ctx.machineId);
      if (lost.length) ctx.hub.outbox.requeue(lost, head);
    }
  },
  ops: syncOps,
  start(ctx) {
    if (!ctx.config.hub.remote) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // ops made in this process go out at once; a CLI's ops are seen by the next tick
    ctx.hub.onChange((set) => {
      if (set.origin !== "local" || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        _round(ctx);
      }, DEBOUNCE_MS);
    });
  },
  async tick(ctx) {
    const sync = ctx.services.sync;
    // a remote that is away is asked again after a growing pause, not every second
    if (ctx.mode !== "daemon" || !ctx.config.hub.remote || ctx.clock.now() < sync.retryAt()) return;
    const last = Date.parse(sync.state("last_sync_at") ?? "") || 0;
    const due = ctx.clock.now() - last >= ctx.config.hub.sync_interval_secs * 1000;
    if (due || sync.pendingCount() > 0) _round(ctx);
  },
});

async function _resolve(ctx: Context, choice: "adopt" | "restore") {
  if (!ctx.config.hub.remote)
    throw new DroverError("bad_config", `Cannot ${choice}: the hub is local only (hub.remote is empty)`);
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

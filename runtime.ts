/**
 * @module The runtime: loads config, store and features, and gives every feature one context (config, SQLite,
 * bus, logger, clock, ops, the hub, services). In the daemon it also runs the 1 s ticker and the reconcile loop.
 * Adding a feature is one folder and one line in `features` below.
 */
import { createDispatcher } from "./core/actions.ts";
import { createBus } from "./core/bus.ts";
import { type Clock, processClock } from "./core/clock.ts";
import { defaultConfig, loadConfig } from "./core/config.ts";
import type { EventType } from "./core/events.ts";
import type { Context, EventHandler, Feature, OpRunner, ReconcileReport, Services } from "./core/feature.ts";
import { idempotencyMigrations } from "./core/idempotency.ts";
import { readMachineId } from "./core/identity.ts";
import { createLogger, type Logger } from "./core/logger.ts";
import { createOpRegistry } from "./core/ops.ts";
import { findProject, type Paths, secureProjectDir } from "./core/paths.ts";
import { relayEvent, relayMigrations, takeRelayedEvents } from "./core/relay.ts";
import { migrate, openCheckedStore, type StoreDamage } from "./core/store.ts";
import { createTicker, type Ticker } from "./core/ticker.ts";
import {
  applyTrust,
  approvals,
  copyKeys,
  TRUST_COMMAND,
  type TrustRule,
  trustMigrations,
  untrustedLine,
} from "./core/trust.ts";
import config from "./features/config/index.ts";
import gateway from "./features/gateway/index.ts";
import heartbeats from "./features/heartbeats/index.ts";
import merge from "./features/merge/index.ts";
import pipeline from "./features/pipeline/index.ts";
import runners from "./features/runners/index.ts";
import sync from "./features/sync/index.ts";
import timers from "./features/timers/index.ts";
import triggers from "./features/triggers/index.ts";
import worktrees from "./features/worktrees/index.ts";
import hub from "./hub/index.ts";

/** Every feature, in start order; the runtime runs them after the hub layer (`allFeatures`). */
export const features: readonly Feature[] = [
  sync,
  pipeline,
  heartbeats,
  timers,
  triggers,
  gateway,
  worktrees,
  merge,
  runners,
  config,
];

/**
 * What a runtime is made of: the hub layer first (every feature's setup may use it), then the features. Whatever
 * lists the ops — the CLI's commands, the tests of every op — takes this list, so the hub's ops are among them.
 */
export const allFeatures: readonly Feature[] = [hub, ...features];

/** How long a closing daemon waits for actions still running (a timer's, a trigger's) to end and be recorded. */
const ACTIONS_GRACE_MS = 2000;

/** What lives only in `state.db` besides what features keep there: lost when a damaged one is rebuilt. */
const RUNTIME_LOCAL_ONLY = ["idempotency keys", "approvals of the committed config (run drover trust again)"];

export { VERSION } from "./core/version.ts";

export interface RuntimeOptions {
  /** The project; found from the working directory when omitted. */
  paths?: Paths;
  mode?: "daemon" | "cli";
  clock?: Clock;
  log?: Logger;
  /** The hub layer and the features, in start order (default `allFeatures`). */
  features?: readonly Feature[];
  /** Check every page of `state.db` (`PRAGMA quick_check`) before using it: the daemon does, and doctor. */
  deepCheck?: boolean;
}

export interface Runtime {
  ctx: Context;
  features: readonly Feature[];
  ops: OpRunner;
  /** Config warnings (unknown keys), for the caller to show. */
  warnings: string[];
  /** Set when `state.db` was found damaged on opening: set aside and rebuilt from the hub. */
  damage?: StoreDamage;
  /** One tick: relayed events from CLI processes, then every feature's `tick`, each isolated. */
  tick(): Promise<void>;
  /** Runs every feature's reconcile (serialized; one failing feature does not stop the others). */
  reconcile(): Promise<Record<string, ReconcileReport | { error: string }>>;
  /** Publishes the events CLI processes left for the daemon. */
  drainRelay(): number;
  /** Daemon: start feature services, the ticker and the reconcile loop. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function openRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  const paths = options.paths ?? findProject();
  const mode = options.mode ?? "cli";
  const clock = options.clock ?? processClock();
  const log = options.log ?? createLogger(mode === "daemon" ? "drover" : "drover-cli");
  const list = options.features ?? allFeatures;
  // a .drover from an older drover, a clone or a hand may be readable by others: 0700, its files 0600
  secureProjectDir(paths);
  const { config, warnings, fromEnv } = await loadConfig(paths.config);
  // the daemon checks every page at start (doctor too); a command finds a damaged file when it first reads it
  const { db, damage } = openCheckedStore(paths.db, {
    deep: options.deepCheck ?? mode === "daemon",
    now: clock.now(),
    prepare(store) {
      migrate(store, "runtime", [...relayMigrations, ...trustMigrations, ...idempotencyMigrations]);
      for (const f of list) migrate(store, f.migrationsKey ?? f.name, f.migrations ?? []);
    },
    localOnly: [...list.flatMap((f) => f.localOnly ?? []), ...RUNTIME_LOCAL_ONLY],
  });
  if (damage) {
    log.error(
      `"${paths.db}" was damaged (${damage.reason}): set aside as "${damage.moved_to}" and rebuilt from the hub; lost: ${damage.lost.join(", ")}`,
    );
    warnings.push(
      `"${paths.db}" was damaged and is rebuilt from the hub; what lived only there is lost (see "drover doctor")`,
    );
  }
  // the committed file's effectful values count only once this machine approved them
  const fileConfig = structuredClone(config);
  const rules: Record<string, TrustRule> = Object.assign({}, ...list.map((f) => f.trust ?? {}));
  const gate = { db, rules, defaults: defaultConfig(), fromEnv };
  const untrusted = applyTrust(config, gate);
  if (untrusted.length) warnings.push(untrustedLine(untrusted, paths.config));
  let approved = approvals(db);

  const bus = createBus({
    clock,
    log: log.child("bus"),
    forward: mode === "cli" ? (event) => relayEvent(db, event) : undefined,
  });
  const ctx: Context = {
    config,
    db,
    bus,
    log,
    clock,
    paths,
    machineId: readMachineId(paths),
    mode,
    endpoint: null,
    untrusted,
    ops: undefined as unknown as OpRunner,
    hub: undefined as unknown as Context["hub"],
    services: {} as Services,
  };
  const ops = createOpRegistry(list, () => ctx);
  ctx.ops = ops;
  ctx.services.actions = createDispatcher(ctx);
  for (const f of list) await f.setup?.(ctx);

  const unsubscribe: Array<() => void> = [];
  if (mode === "daemon") {
    for (const f of list) {
      for (const [type, handler] of Object.entries(f.on ?? {})) {
        const name = `${f.name}.on.${type}`;
        unsubscribe.push(bus.on(type as EventType, (event) => (handler as EventHandler)(ctx, event), { name }));
      }
    }
  }

  let ticker: Ticker | undefined;
  let reconcileTimer: ReturnType<typeof setInterval> | undefined;
  let reconciling: Promise<unknown> = Promise.resolve();

  function announceUntrusted() {
    if (!ctx.untrusted.length) return;
    log.warn(untrustedLine(ctx.untrusted, paths.config));
    bus.publish("config_untrusted", { keys: ctx.untrusted.map((u) => u.key), command: TRUST_COMMAND });
  }

  /** `drover trust` ran in another process: what is in force changes now, not at the next start. */
  function retrust() {
    approved = approvals(db);
    const fresh = structuredClone(fileConfig);
    ctx.untrusted = applyTrust(fresh, gate);
    copyKeys(fresh, config, Object.keys(rules));
    const waiting = ctx.untrusted.map((u) => u.key);
    log.info("Approvals changed: the committed config's values in force were updated", { waiting });
    bus.publish("config_retrusted", { waiting });
    announceUntrusted();
  }

  const runtime: Runtime = {
    ctx,
    features: list,
    ops,
    warnings,
    damage,
    drainRelay() {
      const events = takeRelayedEvents(db);
      for (const event of events) bus.deliver(event);
      return events.length;
    },
    async tick() {
      try {
        runtime.drainRelay();
      } catch (err) {
        log.error("Cannot drain relayed events", { error: err as Error });
      }
      try {
        if (approvals(db) !== approved) retrust();
      } catch (err) {
        log.error("Cannot review this machine's approvals", { error: err as Error });
      }
      for (const f of list) {
        if (!f.tick) continue;
        try {
          await f.tick(ctx);
        } catch (err) {
          log.error(`Tick of "${f.name}" failed`, { error: err as Error });
        }
      }
    },
    reconcile() {
      const run = reconciling.then(() => _reconcileAll(ctx, list));
      reconciling = run.catch(() => undefined);
      return run;
    },
    async start() {
      announceUntrusted();
      for (const f of list) await f.start?.(ctx);
      await runtime.reconcile();
      ticker = createTicker(() => runtime.tick(), { log: log.child("ticker") });
      ticker.start();
      reconcileTimer = setInterval(() => void runtime.reconcile(), config.reconcile.interval_secs * 1000);
      reconcileTimer.unref?.();
    },
    async close() {
      ticker?.stop();
      clearInterval(reconcileTimer);
      await reconciling;
      if (mode === "daemon") {
        await Promise.race([ctx.services.actions.settle(), Bun.sleep(ACTIONS_GRACE_MS)]);
        for (const f of [...list].reverse()) await f.stop?.(ctx);
      }
      for (const u of unsubscribe) u();
      await bus.idle();
      db.close();
    },
  };
  return runtime;
}

// --- internal ---

async function _reconcileAll(ctx: Context, list: readonly Feature[]) {
  const reports: Record<string, ReconcileReport | { error: string }> = {};
  for (const f of list) {
    if (!f.reconcile) continue;
    try {
      const report = await f.reconcile(ctx);
      reports[f.name] = report;
      if (report.changed) ctx.bus.publish("reconciled", { feature: f.name, report });
    } catch (err) {
      ctx.log.error(`Reconcile of "${f.name}" failed`, { error: err as Error });
      reports[f.name] = { error: (err as Error).message };
    }
  }
  return reports;
}

/**
 * @module Feature `heartbeats`: who is alive. A heartbeat is written in place (atomically) so its events never
 * wait for a commit; the native watcher (with a poll fallback) turns file changes into events; the ticker
 * publishes status changes caused by time; a two-phase watchdog releases a stale agent's claims only after
 * the takeover grace.
 */
import { type FSWatcher, mkdirSync, watch } from "node:fs";
import { basename, join } from "node:path";
import type { AsyncSubscription } from "@parcel/watcher";
import { type Context, defineFeature } from "../../core/feature.ts";
import { loadWatcher } from "../../core/watcher.ts";
import { presenceName } from "../../hub/presence.ts";
import { heartbeatsContract } from "./contract.ts";
import { parseHeartbeat, type Thresholds } from "./file.ts";
import { createMonitor, type Monitor } from "./monitor.ts";
import { heartbeatOps } from "./ops.ts";

export interface HeartbeatService {
  monitor: Monitor;
  lastPoll: number;
  subscription?: AsyncSubscription;
  inotify?: FSWatcher;
}

declare module "../../core/feature.ts" {
  interface Services {
    heartbeats: HeartbeatService;
  }
  interface OpMap {
    heartbeat: (typeof heartbeatOps)["heartbeat"];
    "agents.list": (typeof heartbeatOps)["agents.list"];
    "agent.pause": (typeof heartbeatOps)["agent.pause"];
    "agent.resume": (typeof heartbeatOps)["agent.resume"];
  }
}

export default defineFeature({
  name: "heartbeats",
  ...heartbeatsContract,
  localOnly: ["agent pauses"],
  migrations: [
    "CREATE TABLE agent_pauses (agent_id TEXT PRIMARY KEY, until TEXT NOT NULL)",
    "ALTER TABLE agent_pauses ADD COLUMN timer_id TEXT", // the timer that ends the pause
  ],
  setup(ctx) {
    mkdirSync(join(ctx.paths.hub, "heartbeats"), { recursive: true });
    ctx.services.heartbeats = { monitor: createMonitor(ctx, () => _thresholds(ctx)), lastPoll: 0 };
    ctx.hub.repo.layout.add("heartbeats/*");
    ctx.hub.trackPresenceSource({
      prefix: "heartbeats/",
      belongs(path, content, machine) {
        const parsed = parseHeartbeat(path.slice("heartbeats/".length), content);
        return "heartbeat" in parsed && presenceName(parsed.heartbeat.machine_id) === machine;
      },
      keepWorking(working, incoming) {
        const w = parseHeartbeat("x.json", working);
        const c = parseHeartbeat("x.json", incoming);
        return (
          "heartbeat" in w &&
          "heartbeat" in c &&
          Date.parse(w.heartbeat.last_heartbeat) > Date.parse(c.heartbeat.last_heartbeat)
        );
      },
    });
  },
  ops: heartbeatOps,
  async start(ctx) {
    const service = ctx.services.heartbeats;
    const dir = join(ctx.paths.hub, "heartbeats");
    service.monitor.scan(); // the first look builds the snapshot
    if (process.env.DROVER_WATCHER === "off") return;
    try {
      service.subscription = await loadWatcher().subscribe(dir, (err, events) => {
        if (err)
          ctx.log.warnOnce(`watcher:${err.message}`, "File watcher error; the poll fallback continues", { error: err });
        else service.monitor.scanFiles(events.map((e) => basename(e.path)));
      });
      // @parcel/watcher delivers only after 50 ms of quiet (its Debounce.hh), above the 50 ms p99 bar for
      // heartbeat events; plain inotify through fs.watch has no such delay and names the file
      service.inotify = watch(dir, (_type, name) => name && service.monitor.scanFiles([String(name)]));
    } catch (err) {
      ctx.log.warn(`File watcher unavailable, polling every ${ctx.config.heartbeats.poll_secs} s`, {
        error: err as Error,
      });
    }
  },
  async stop(ctx) {
    ctx.services.heartbeats.inotify?.close();
    await ctx.services.heartbeats.subscription?.unsubscribe();
  },
  async tick(ctx) {
    const service = ctx.services.heartbeats;
    const { monitor } = service;
    const now = ctx.clock.now();
    if (now - service.lastPoll >= ctx.config.heartbeats.poll_secs * 1000) {
      service.lastPoll = now;
      monitor.scan();
    }
    monitor.checkTime();
    for (const agent of monitor.dueTakeovers(ctx.config.heartbeats.takeover_grace_secs * 1000)) {
      await ctx.ops.call("agent.takeover", { agent });
      monitor.markTakenOver(agent);
    }
  },
  reconcile(ctx) {
    const { monitor } = ctx.services.heartbeats;
    const events = monitor.scan() + monitor.checkTime();
    return { changed: events, events };
  },
});

// --- internal ---

function _thresholds(ctx: Context): Thresholds {
  return {
    idleAfterMs: ctx.config.heartbeats.idle_after_secs * 1000,
    staleAfterMs: ctx.config.heartbeats.stale_after_secs * 1000,
  };
}

/**
 * @module The heartbeat monitor: diffs `heartbeats/` against its last snapshot and publishes `heartbeat`,
 * `agent_status` and `agent_gone` — whoever wrote the file (this daemon, a CLI, a hand, a sync). Status
 * changes caused by time alone are found by `checkTime`, which wakes only at the next threshold instead of
 * rescanning every second. Malformed files are skipped with one warning per distinct content.
 */
import { join } from "node:path";
import type { Context } from "../../core/feature.ts";
import {
  type AgentStatus,
  type Heartbeat,
  isHeartbeatFileName,
  listHeartbeatFiles,
  nextStatusChange,
  readHeartbeatFile,
  SKEW_MS,
  statusAt,
  type Thresholds,
} from "./file.ts";

export interface Seen {
  heartbeat: Heartbeat;
  lastMs: number;
  status: AgentStatus;
  text: string;
}

export interface InvalidHeartbeat {
  file: string;
  reason: string;
}

export interface Monitor {
  /** Reads the folder and publishes what changed since the last scan; returns the number of events. */
  scan(): number;
  /** The same for the named files only (what a watcher reported). */
  scanFiles(files: string[]): number;
  /** Publishes status changes that time alone caused; cheap when no threshold has passed. */
  checkTime(): number;
  /** Agents stale for longer than the takeover grace whose claims have not been released yet. */
  dueTakeovers(graceMs: number): string[];
  markTakenOver(agent: string): void;
  agents(): ReadonlyMap<string, Seen>;
  invalid(): InvalidHeartbeat[];
}

export function createMonitor(ctx: Context, thresholds: () => Thresholds): Monitor {
  const dir = join(ctx.paths.hub, "heartbeats");
  const seen = new Map<string, Seen>();
  const invalid = new Map<string, InvalidHeartbeat>();
  const takenOver = new Map<string, number>();
  let nextChangeAt: number | null = null;

  function publishStatus(agent: string, entry: Seen, status: AgentStatus, previous: AgentStatus | null) {
    entry.status = status;
    ctx.bus.publish("agent_status", { agent_id: agent, status, previous }, { origin: _origin(ctx, entry.heartbeat) });
  }

  /** Looks at one file and publishes what changed about it; returns the number of events. */
  function observe(file: string): number {
    const read = readHeartbeatFile(dir, file);
    const agent = file.endsWith(".json") ? file.slice(0, -5) : file;
    if (!read) {
      invalid.delete(file);
      if (!seen.delete(agent)) return 0;
      takenOver.delete(agent);
      ctx.bus.publish("agent_gone", { agent_id: agent });
      return 1;
    }
    const { text, result } = read;
    if ("error" in result) {
      invalid.set(file, { file, reason: result.error });
      ctx.log.warnOnce(`heartbeat:${file}:${Bun.hash(text)}`, `Skipping heartbeat file "${file}": ${result.error}`);
      return 0;
    }
    invalid.delete(file);
    const { heartbeat } = result;
    const before = seen.get(agent);
    const lastMs = Date.parse(heartbeat.last_heartbeat);
    if (before && (before.text === text || lastMs < before.lastMs)) return 0; // same, or an older write landing late
    const now = ctx.clock.now();
    const entry: Seen = { heartbeat, lastMs, status: before?.status ?? "active", text };
    seen.set(agent, entry);
    ctx.bus.publish(
      "heartbeat",
      { ...heartbeat, clock_skew: lastMs - now > SKEW_MS },
      { origin: _origin(ctx, heartbeat) },
    );
    const status = statusAt(lastMs, now, thresholds());
    if (before && before.status === status) return 1;
    publishStatus(agent, entry, status, before?.status ?? null);
    return 2;
  }

  function recomputeNext(now: number) {
    nextChangeAt = null;
    for (const e of seen.values()) {
      const at = nextStatusChange(e.lastMs, now, thresholds());
      if (at !== null && (nextChangeAt === null || at < nextChangeAt)) nextChangeAt = at;
    }
  }

  return {
    scan() {
      const files = listHeartbeatFiles(dir);
      let events = 0;
      for (const file of files) events += observe(file);
      for (const file of invalid.keys()) if (!files.includes(file)) invalid.delete(file);
      const present = new Set(files);
      for (const agent of [...seen.keys()]) if (!present.has(`${agent}.json`)) events += observe(`${agent}.json`);
      recomputeNext(ctx.clock.now());
      return events;
    },
    scanFiles(files) {
      let events = 0;
      for (const file of files) if (isHeartbeatFileName(file)) events += observe(file);
      recomputeNext(ctx.clock.now());
      return events;
    },
    checkTime() {
      const now = ctx.clock.now();
      if (nextChangeAt === null || now < nextChangeAt) return 0;
      let events = 0;
      for (const [agent, entry] of seen) {
        const status = statusAt(entry.lastMs, now, thresholds());
        if (status !== entry.status) {
          publishStatus(agent, entry, status, entry.status);
          events++;
        }
      }
      recomputeNext(now);
      return events;
    },
    dueTakeovers(graceMs) {
      const now = ctx.clock.now();
      const due: string[] = [];
      for (const [agent, e] of seen) {
        if (
          e.status === "stale" &&
          now >= e.lastMs + thresholds().staleAfterMs + graceMs &&
          takenOver.get(agent) !== e.lastMs
        )
          due.push(agent);
      }
      return due;
    },
    markTakenOver(agent) {
      const e = seen.get(agent);
      if (e) takenOver.set(agent, e.lastMs);
    },
    agents: () => seen,
    invalid: () => [...invalid.values()],
  };
}

// --- internal ---

function _origin(ctx: Context, hb: Heartbeat): "local" | "remote" {
  return hb.machine_id === ctx.machineId ? "local" : "remote";
}

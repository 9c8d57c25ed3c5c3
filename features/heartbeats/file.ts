/**
 * @module A heartbeat file (`heartbeats/<agent_id>.json`) and the status it implies. Pure functions: the
 * thresholds come in as arguments, time as a number, so tests need no clock.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { readRegularFile } from "../../core/files.ts";
import { agentIdSchema } from "../../core/ids.ts";
import { parseJsonFile } from "../../core/json.ts";

export const AGENT_STATES = ["working", "idle", "exiting", "stuck"] as const;
export type AgentState = (typeof AGENT_STATES)[number];
export type AgentStatus = "active" | "idle" | "stale";

/** Larger files are not read: a heartbeat is a few hundred bytes. */
export const MAX_HEARTBEAT_BYTES = 16 * 1024;
/** Timestamps further ahead than this are flagged `clock_skew`. */
export const SKEW_MS = 60_000;

export const heartbeatSchema = z.object({
  agent_id: agentIdSchema,
  machine_id: z.string().min(1).max(128),
  last_heartbeat: z.iso.datetime({ offset: true }),
  active_item_id: z.string().max(64).nullable(),
  state: z.enum(AGENT_STATES),
  /**
   * The agent listens for its `assigned` events: auto-assign may give it work (SPEC §5). Absent (a file written
   * without it, a relayed event from an older drover): it may not.
   */
  accepts_work: z.boolean().default(false),
});

export type Heartbeat = z.output<typeof heartbeatSchema>;

export interface Thresholds {
  idleAfterMs: number;
  staleAfterMs: number;
}

/** The content of a heartbeat file. */
export function makeHeartbeat(
  agent: string,
  fields: { machineId: string; now: number; item: string | null; state: string; acceptsWork?: boolean },
) {
  return {
    agent_id: agent,
    machine_id: fields.machineId,
    last_heartbeat: new Date(fields.now).toISOString(),
    active_item_id: fields.item,
    state: fields.state,
    ...(fields.acceptsWork ? { accepts_work: true } : {}),
  };
}

export function heartbeatPath(agent: string): string {
  return `heartbeats/${agent}.json`;
}

/** Parses a heartbeat file; the reason when it is unusable (name, size, JSON, shape). */
export function parseHeartbeat(name: string, text: string): { heartbeat: Heartbeat } | { error: string } {
  const agent = name.endsWith(".json") ? name.slice(0, -5) : "";
  if (!agentIdSchema.safeParse(agent).success) return { error: "file name is not a valid agent id" };
  const parsed = parseJsonFile(text, heartbeatSchema, MAX_HEARTBEAT_BYTES);
  if ("error" in parsed) return parsed;
  if (parsed.value.agent_id !== agent)
    return { error: `agent_id "${parsed.value.agent_id}" does not match the file name` };
  return { heartbeat: parsed.value };
}

/** Status from age; a boundary belongs to the older class (exactly idle_after is idle). */
export function statusAt(lastMs: number, now: number, t: Thresholds): AgentStatus {
  const age = now - lastMs;
  if (age < t.idleAfterMs) return "active";
  if (age < t.staleAfterMs) return "idle";
  return "stale";
}

/** When the status of a heartbeat taken at `lastMs` next changes by time alone (null: it is already stale). */
export function nextStatusChange(lastMs: number, now: number, t: Thresholds): number | null {
  if (now < lastMs + t.idleAfterMs) return lastMs + t.idleAfterMs;
  if (now < lastMs + t.staleAfterMs) return lastMs + t.staleAfterMs;
  return null;
}

export interface HeartbeatFile {
  file: string;
  /** The text, or a stand-in naming why it was not read (too large, not a regular file). */
  text: string;
  result: { heartbeat: Heartbeat } | { error: string };
}

/**
 * The names in a heartbeat folder (temp files of writers in progress left out), whatever they are: a FIFO or
 * symlink there is listed too, to be reported as invalid rather than silently ignored.
 */
export function listHeartbeatFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter(isHeartbeatFileName);
  } catch {
    return [];
  }
}

export function isHeartbeatFileName(name: string): boolean {
  return !name.startsWith(".") && !name.endsWith(".tmp");
}

/** One heartbeat file, parsed; null when it does not exist; one that is not a small regular file is not read. */
export function readHeartbeatFile(dir: string, file: string): HeartbeatFile | null {
  const read = readRegularFile(join(dir, file), { maxBytes: MAX_HEARTBEAT_BYTES });
  if (!read) return null;
  if ("error" in read) return { file, text: `unread:${read.error}`, result: read };
  return { file, text: read.text, result: parseHeartbeat(file, read.text) };
}

/** Every heartbeat file in a folder, parsed. */
export function readHeartbeatDir(dir: string): HeartbeatFile[] {
  return listHeartbeatFiles(dir).flatMap((file) => readHeartbeatFile(dir, file) ?? []);
}

/**
 * @module `drover hook claude` and `drover hook codex`: agent lifecycle hooks turned into heartbeats. A hook
 * never blocks or fails its agent: it writes one heartbeat file (no daemon, no hub lock, no database), is
 * throttled to one write per agent per 15 s while nothing changes, and the command always exits 0 within a
 * bounded time, logging any error to `.drover/hooks.log` (kept under 1 MiB, the previous one as `hooks.log.1`).
 * The project is the one that holds the hook's working directory: the `cwd` its input names only picks a
 * worktree inside that project, never another folder to write to.
 *
 * One session is one agent: `<prefix>-<8 hex of a hash of the whole session id>` (Codex thread ids are UUIDv7, a
 * timestamp first: their first characters are shared by every thread of the same minute). A session exists once
 * it started (Claude's SessionStart, a Codex thread's first finished turn): an event of a session that never
 * started — `claude mcp list` runs SessionEnd as a probe — makes no agent. Its end leaves a tombstone, so a late
 * event (Codex does not wait for its notify) makes no ended agent idle again; only a SessionStart starts it
 * again. SessionStart tells the model which agent it is and which item it holds, so its tool calls and its hooks
 * name the same agent.
 */
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import { readRegularFile, writeFileAtomic } from "../core/files.ts";
import { readMachineId } from "../core/identity.ts";
import { agentIdSchema, itemIdSchema } from "../core/ids.ts";
import { canonicalJson } from "../core/json.ts";
import { findProject, type Paths } from "../core/paths.ts";
import { type AgentState, heartbeatPath, makeHeartbeat } from "../features/heartbeats/file.ts";
import { claimHeld, type Item, itemPath, parseItemFile } from "../features/pipeline/item.ts";

/** While agent, state and item stay the same, a hook writes at most once in this long. */
export const THROTTLE_MS = 15_000;
/** Hook input past this is not read (a tool's answer can be large; an endless stream must not fill memory). */
export const MAX_HOOK_INPUT_BYTES = 8 * 1024 * 1024;
/** `hooks.log` is moved to `hooks.log.1` once it reaches this size. */
export const MAX_HOOK_LOG_BYTES = 1024 * 1024;
const MAX_LOG_LINE = 1000;
/** Larger files in the hub or `hooks/` are not what the hook looks for there. */
const MAX_READ_BYTES = 1024 * 1024;
/** Records of sessions are forgotten this long after their start, or their end (killed ones never end). */
const SESSION_RECORD_MS = 7 * 86_400_000;

/** Claude Code hook events and the state each one means; others are ignored. */
const CLAUDE_STATES = new Map<string, AgentState>([
  ["SessionStart", "idle"],
  ["UserPromptSubmit", "working"],
  ["PostToolUse", "working"],
  ["Stop", "idle"],
  ["SessionEnd", "exiting"],
]);

export interface HookInput {
  cwd: string;
  session: string;
  state: AgentState;
  /**
   * How the event begins its session: "explicit" (SessionStart, which starts an ended session again too),
   * "implicit" (a Codex turn's notify, the only start a thread run without hooks has: it starts only a session
   * never seen), or not at all.
   */
  starts: "explicit" | "implicit" | false;
}

export interface HookOutcome {
  agent: string;
  item: string | null;
  state: AgentState;
  written: boolean;
  /** For a session's start: what the model is told (its agent id and item), as Claude's `additionalContext`. */
  context?: string;
}

/** Reads a Claude Code hook's stdin JSON; null for events that say nothing about liveness. */
export function parseClaudeHook(text: string): HookInput | null {
  const input = _object(text);
  const state = typeof input.hook_event_name === "string" ? CLAUDE_STATES.get(input.hook_event_name) : undefined;
  if (!state) return null;
  const starts = input.hook_event_name === "SessionStart" ? "explicit" : false;
  return { cwd: _string(input.cwd) ?? process.cwd(), session: _string(input.session_id) ?? "", state, starts };
}

/** Reads Codex's notify argument (JSON); a finished turn means the agent waits for its user. */
export function parseCodexNotify(text: string): HookInput | null {
  const input = _object(text);
  if (input.type !== "agent-turn-complete") return null;
  return {
    cwd: _string(input.cwd) ?? process.cwd(),
    session: _string(input["thread-id"]) ?? "",
    state: "idle",
    starts: "implicit",
  };
}

/** Reads a hook's stdin up to MAX_HOOK_INPUT_BYTES; more than that is refused without reading it all. */
export async function readHookStdin(stream: ReadableStream<Uint8Array> = Bun.stdin.stream()): Promise<string> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > MAX_HOOK_INPUT_BYTES) {
      void reader.cancel().catch(() => undefined);
      throw new DroverError("invalid_input", `Hook input is larger than ${MAX_HOOK_INPUT_BYTES} bytes: skipped`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Writes the heartbeat the hook stands for in `paths`' project, unless the throttle says it was just written. */
export function recordHook(
  input: HookInput,
  options: { paths: Paths; prefix: string; env: Record<string, string | undefined>; now: number },
): HookOutcome {
  const { paths } = options;
  const found = identify(paths, input, options);
  const { agent, item } = found;
  const record = join(paths.dir, "hooks", "sessions", `${sessionKey(input.session)}.json`);
  const known = _readRecord(record);
  const starts = input.starts === "explicit" || (input.starts === "implicit" && !known);
  // an event of a session that never started, or that ended, makes no agent
  if (!starts && (!known || known.ended_at !== undefined)) return { agent, item, state: input.state, written: false };
  if (starts) _startSession(record, { agent, now: options.now, sweep: !known });
  const context = input.starts === "explicit" ? _sessionContext(found, options.now) : undefined;
  if (input.state === "exiting") {
    const ended_at = new Date(options.now).toISOString();
    writeFileAtomic(record, JSON.stringify({ agent, started_at: known?.started_at, ended_at }));
  }
  const throttleFile = join(paths.dir, "hooks", `${agent}.json`);
  const last = _readJson(throttleFile) as { at?: unknown; state?: unknown; item?: unknown } | null;
  if (
    last &&
    last.state === input.state &&
    last.item === item &&
    typeof last.at === "number" &&
    options.now - last.at < THROTTLE_MS
  ) {
    return { agent, item, state: input.state, written: false, context };
  }
  const heartbeat = makeHeartbeat(agent, {
    machineId: readMachineId(paths),
    now: options.now,
    item,
    state: input.state,
  });
  writeFileAtomic(join(paths.hub, heartbeatPath(agent)), canonicalJson(heartbeat));
  writeFileAtomic(throttleFile, JSON.stringify({ at: options.now, state: input.state, item }));
  return { agent, item, state: input.state, written: true, context };
}

/** A session's short key: 8 hex characters of a hash of its whole id ("unknown" without one). */
export function sessionKey(session: string): string {
  return session ? new Bun.CryptoHasher("sha256").update(session).digest("hex").slice(0, 8) : "unknown";
}

/**
 * Who the agent is: `DROVER_AGENT`; else, in `.drover/worktrees/<id>`, the holder of that item; else
 * `<prefix>-<session id>`. The active item comes from the worktree; `stored` is that item as the hub holds it
 * (null when its file is missing or not a valid item).
 */
export function identify(
  paths: Paths,
  input: HookInput,
  options: { prefix: string; env: Record<string, string | undefined> },
): { agent: string; item: string | null; stored: Item | null } {
  const inside = relative(paths.worktrees, input.cwd);
  const candidate = inside && !inside.startsWith("..") ? inside.split(sep)[0]! : "";
  const item = itemIdSchema.safeParse(candidate).success ? candidate : null;
  const stored = item ? _readItem(paths, item) : null;
  const fromEnv = options.env.DROVER_AGENT;
  const agent = [fromEnv, stored?.claim?.agent_id, `${options.prefix}-${sessionKey(input.session)}`].find(
    (a) => typeof a === "string" && agentIdSchema.safeParse(a).success,
  ) as string;
  return { agent, item, stored };
}

/**
 * Runs a hook to the end in the project holding this process's working directory: never throws, logs what
 * went wrong to that project's `hooks.log` (outside a project there is nothing to record and nowhere to log).
 */
export async function runHookSafely(
  read: () => HookInput | null | Promise<HookInput | null>,
  options: { prefix: string },
): Promise<HookOutcome | null> {
  let paths: Paths | undefined;
  try {
    paths = findProject(process.cwd());
    const input = await read();
    if (!input) return null;
    return recordHook(input, { paths, prefix: options.prefix, env: process.env, now: Date.now() });
  } catch (err) {
    if (paths) _log(paths, `${new Date().toISOString()} ${options.prefix}: ${(err as Error).message}`);
    return null;
  }
}

// --- internal ---

function _object(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (!value || typeof value !== "object" || Array.isArray(value))
    throw new DroverError("invalid_input", "Hook input is not a JSON object");
  return value as Record<string, unknown>;
}

function _string(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * What a session's model is told at its start: the agent id its hooks speak for, and the item it holds. Only a
 * valid item's claim, held by this agent and not expired, is called its own (the hub is anyone's to push to).
 */
function _sessionContext(
  { agent, item, stored }: { agent: string; item: string | null; stored: Item | null },
  now: number,
): string {
  const mine = stored?.claim?.agent_id === agent && claimHeld(stored, now) ? stored.claim : null;
  const holds = mine
    ? `You work on item "${item}" (this folder is its worktree), claimed for you with fence ${mine.fence}.`
    : item
      ? `This folder is the worktree of item "${item}"; claim it with item_claim before you work on it.`
      : "You hold no item yet: take the best ready one with item_next.";
  return (
    `drover: in this session you are agent "${agent}". Pass "${agent}" as the agent of every drover tool call ` +
    `(item_next, item_move, item_release, heartbeat, usage_report), so your work and this session's heartbeats ` +
    `are one agent's. ${holds}`
  );
}

function _readItem(paths: Paths, id: string): Item | null {
  const path = itemPath(id);
  const read = readRegularFile(join(paths.hub, path), { maxBytes: MAX_READ_BYTES });
  if (!read || "error" in read) return null;
  const parsed = parseItemFile(path, read.text);
  return "item" in parsed ? parsed.item : null;
}

type _SessionRecord = { agent?: unknown; started_at?: unknown; ended_at?: unknown };

/** A session's record (a tombstone once it ended), or null; anything but a regular file there is refused. */
function _readRecord(file: string): _SessionRecord | null {
  const read = readRegularFile(file, { maxBytes: MAX_READ_BYTES });
  if (!read) return null;
  if ("error" in read) throw new DroverError("conflict", `Cannot use the session record "${file}": ${read.error}`);
  return _parseRecord(read.text);
}

/** A record's fields; one that is not a JSON object has none (it still says the session was seen). */
function _parseRecord(text: string): _SessionRecord {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as _SessionRecord) : {};
  } catch {
    return {};
  }
}

/** Records that a session started (for its later events); a new one first forgets the sessions long gone. */
function _startSession(record: string, { agent, now, sweep }: { agent: string; now: number; sweep: boolean }): void {
  const dir = dirname(record);
  mkdirSync(dir, { recursive: true });
  if (sweep) _sweepSessions(dir, now);
  writeFileAtomic(record, JSON.stringify({ agent, started_at: new Date(now).toISOString() }));
}

/**
 * Removes the records whose own time (the end, else the start) is older than SESSION_RECORD_MS at `now`. What is
 * not a regular record is left alone, and one entry that cannot be read or removed stops no session's start.
 */
function _sweepSessions(dir: string, now: number): void {
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    try {
      const read = readRegularFile(file, { maxBytes: MAX_READ_BYTES });
      if (!read || "error" in read) continue;
      const { started_at, ended_at } = _parseRecord(read.text);
      if (now - Date.parse(String(ended_at ?? started_at)) > SESSION_RECORD_MS) rmSync(file, { force: true });
    } catch {
      // swapped for a folder since it was read, or not ours to remove: left for the next sweep
    }
  }
}

function _readJson(file: string): unknown {
  const read = readRegularFile(file, { maxBytes: MAX_READ_BYTES });
  if (!read || "error" in read) return null;
  try {
    return JSON.parse(read.text);
  } catch {
    return null;
  }
}

/** Appends one line (shortened, control characters escaped) to `hooks.log`, rotating it at the cap. */
function _log(paths: Paths, line: string): void {
  const file = join(paths.dir, "hooks.log");
  const text = escapeControls(line.slice(0, MAX_LOG_LINE)) + "\n";
  try {
    let fd = _openLog(file);
    if (fstatSync(fd).size >= MAX_HOOK_LOG_BYTES) {
      closeSync(fd);
      renameSync(file, `${file}.1`);
      fd = _openLog(file);
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  } catch {
    // a log that cannot be written (a FIFO or symlink in its place) is not worth failing over
  }
}

/** Opens the log for appending; a FIFO, symlink or anything else in its place is refused, never waited on. */
function _openLog(file: string): number {
  const fd = openSync(
    file,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    0o666,
  );
  if (fstatSync(fd).isFile()) return fd;
  closeSync(fd);
  throw new Error(`"${file}" is not a regular file`);
}

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
 * started — `claude mcp list` runs SessionEnd as a probe — makes no agent. SessionStart tells the model which
 * agent it is and which item it holds, so its tool calls and its hooks name the same agent.
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
  statSync,
  writeSync,
} from "node:fs";
import { join, relative, sep } from "node:path";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import { readRegularFile, writeFileAtomic } from "../core/files.ts";
import { readMachineId } from "../core/identity.ts";
import { agentIdSchema, itemIdSchema } from "../core/ids.ts";
import { canonicalJson } from "../core/json.ts";
import { findProject, type Paths } from "../core/paths.ts";
import { type AgentState, heartbeatPath, makeHeartbeat } from "../features/heartbeats/file.ts";
import { itemPath } from "../features/pipeline/item.ts";

/** While agent, state and item stay the same, a hook writes at most once in this long. */
export const THROTTLE_MS = 15_000;
/** Hook input past this is not read (a tool's answer can be large; an endless stream must not fill memory). */
export const MAX_HOOK_INPUT_BYTES = 8 * 1024 * 1024;
/** `hooks.log` is moved to `hooks.log.1` once it reaches this size. */
export const MAX_HOOK_LOG_BYTES = 1024 * 1024;
const MAX_LOG_LINE = 1000;
/** Larger files in the hub or `hooks/` are not what the hook looks for there. */
const MAX_READ_BYTES = 1024 * 1024;
/** Records of sessions that never ended (killed) are forgotten after this long. */
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
  /** The event begins the session (SessionStart; any Codex turn, which has no start of its own). */
  starts: boolean;
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
  const starts = input.hook_event_name === "SessionStart";
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
    starts: true,
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
  const { agent, item } = identify(paths, input, options);
  const record = join(paths.dir, "hooks", "sessions", `${sessionKey(input.session)}.json`);
  if (input.starts) _startSession(record, { agent, now: options.now });
  else if (!_readJson(record)) return { agent, item, state: input.state, written: false }; // it never started
  const context = input.starts && input.state !== "exiting" ? sessionContext(paths, { agent, item }) : undefined;
  if (input.state === "exiting") rmSync(record, { force: true });
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

/** What a session's model is told at its start: the agent id its hooks speak for, and the item it holds. */
export function sessionContext(paths: Paths, { agent, item }: { agent: string; item: string | null }): string {
  const claim = item ? _holder(paths, item) : undefined;
  const holds =
    item && claim?.agent_id === agent
      ? `You work on item "${item}" (this folder is its worktree), claimed for you with fence ${claim.fence}.`
      : item
        ? `This folder is the worktree of item "${item}"; claim it with item_claim before you work on it.`
        : "You hold no item yet: take the best ready one with item_next.";
  return (
    `drover: in this session you are agent "${agent}". Pass "${agent}" as the agent of every drover tool call ` +
    `(item_next, item_move, item_release, heartbeat, usage_report), so your work and this session's heartbeats ` +
    `are one agent's. ${holds}`
  );
}

/**
 * Who the agent is: `DROVER_AGENT`; else, in `.drover/worktrees/<id>`, the holder of that item; else
 * `<prefix>-<session id>`. The active item comes from the worktree.
 */
export function identify(
  paths: Paths,
  input: HookInput,
  options: { prefix: string; env: Record<string, string | undefined> },
) {
  const inside = relative(paths.worktrees, input.cwd);
  const candidate = inside && !inside.startsWith("..") ? inside.split(sep)[0]! : "";
  const item = itemIdSchema.safeParse(candidate).success ? candidate : null;
  const holder = item ? _holder(paths, item)?.agent_id : undefined;
  const fromEnv = options.env.DROVER_AGENT;
  const agent = [fromEnv, holder, `${options.prefix}-${sessionKey(input.session)}`].find(
    (a) => typeof a === "string" && agentIdSchema.safeParse(a).success,
  ) as string;
  return { agent, item };
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

function _holder(paths: Paths, item: string): { agent_id?: unknown; fence?: unknown } | undefined {
  const file = _readJson(join(paths.hub, itemPath(item))) as { claim?: { agent_id?: unknown; fence?: unknown } } | null;
  return file?.claim ?? undefined;
}

/** Records that a session started (for its later events), forgetting records of sessions long gone. */
function _startSession(record: string, { agent, now }: { agent: string; now: number }): void {
  const dir = record.slice(0, record.lastIndexOf("/"));
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (now - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? now) > SESSION_RECORD_MS)
      rmSync(file, { force: true });
  }
  writeFileAtomic(record, JSON.stringify({ agent, started_at: new Date(now).toISOString() }));
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

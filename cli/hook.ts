/**
 * @module `drover hook claude` and `drover hook codex`: agent lifecycle hooks turned into heartbeats. A hook
 * never blocks or fails its agent: it writes one heartbeat file (no daemon, no hub lock, no database), is
 * throttled to one write per agent per 15 s while nothing changes, and the command always exits 0 within a
 * bounded time, logging any error to `.drover/hooks.log`.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { writeFileAtomic } from "../core/files.ts";
import { readMachineId } from "../core/identity.ts";
import { canonicalJson } from "../core/json.ts";
import { findProject, type Paths } from "../core/paths.ts";
import { heartbeatPath, makeHeartbeat, type AgentState } from "../features/heartbeats/file.ts";
import { agentIdSchema, itemIdSchema, itemPath } from "../features/pipeline/item.ts";

/** While agent, state and item stay the same, a hook writes at most once in this long. */
export const THROTTLE_MS = 15_000;

/** Claude Code hook events and the state each one means; others are ignored. */
const CLAUDE_STATES: Record<string, AgentState> = {
  SessionStart: "idle",
  UserPromptSubmit: "working",
  PostToolUse: "working",
  Stop: "idle",
  SessionEnd: "exiting",
};

export interface HookInput {
  cwd: string;
  session: string;
  state: AgentState;
}

export interface HookOutcome {
  agent: string;
  item: string | null;
  state: AgentState;
  written: boolean;
}

/** Reads a Claude Code hook's stdin JSON; null for events that say nothing about liveness. */
export function parseClaudeHook(text: string): HookInput | null {
  const input = JSON.parse(text) as { session_id?: unknown; cwd?: unknown; hook_event_name?: unknown };
  const state = typeof input.hook_event_name === "string" ? CLAUDE_STATES[input.hook_event_name] : undefined;
  if (!state) return null;
  return { cwd: typeof input.cwd === "string" ? input.cwd : process.cwd(), session: String(input.session_id ?? ""), state };
}

/** Reads Codex's notify argument (JSON); a finished turn means the agent waits for its user. */
export function parseCodexNotify(text: string): HookInput | null {
  const input = JSON.parse(text) as { type?: unknown; cwd?: unknown; "thread-id"?: unknown };
  if (input.type !== "agent-turn-complete") return null;
  return { cwd: typeof input.cwd === "string" ? input.cwd : process.cwd(), session: String(input["thread-id"] ?? ""), state: "idle" };
}

/** Writes the heartbeat the hook stands for, unless the throttle says it was just written. */
export function recordHook(input: HookInput, options: { prefix: string; env: Record<string, string | undefined>; now: number }): HookOutcome {
  const paths = findProject(input.cwd);
  const { agent, item } = identify(paths, input, options);
  const throttleFile = join(paths.dir, "hooks", `${agent}.json`);
  const last = _readJson(throttleFile) as { at?: number; state?: string; item?: string | null } | null;
  if (last && last.state === input.state && last.item === item && options.now - (last.at ?? 0) < THROTTLE_MS) {
    return { agent, item, state: input.state, written: false };
  }
  const heartbeat = makeHeartbeat(agent, { machineId: readMachineId(paths), now: options.now, item, state: input.state });
  writeFileAtomic(join(paths.hub, heartbeatPath(agent)), canonicalJson(heartbeat));
  writeFileAtomic(throttleFile, JSON.stringify({ at: options.now, state: input.state, item }));
  return { agent, item, state: input.state, written: true };
}

/**
 * Who the agent is: `DROVER_AGENT`; else, in `.drover/worktrees/<id>`, the holder of that item; else
 * `<prefix>-<session id>`. The active item comes from the worktree.
 */
export function identify(paths: Paths, input: HookInput, options: { prefix: string; env: Record<string, string | undefined> }) {
  const inside = relative(paths.worktrees, input.cwd);
  const candidate = inside && !inside.startsWith("..") ? inside.split(sep)[0]! : "";
  const item = itemIdSchema.safeParse(candidate).success ? candidate : null;
  const holder = item ? (_readJson(join(paths.hub, itemPath(item))) as { claim?: { agent_id?: string } } | null)?.claim?.agent_id : undefined;
  const fromEnv = options.env.DROVER_AGENT;
  const session = input.session.replace(/[^A-Za-z0-9]/g, "").slice(0, 8) || "unknown";
  const agent = [fromEnv, holder, `${options.prefix}-${session}`].find((a) => a && agentIdSchema.safeParse(a).success)!;
  return { agent, item };
}

/** Runs a hook to the end: never throws, logs what went wrong where the project keeps hook logs. */
export function runHookSafely(read: () => HookInput | null, options: { prefix: string }): HookOutcome | null {
  let cwd = process.cwd();
  try {
    const input = read();
    if (!input) return null;
    cwd = input.cwd;
    return recordHook(input, { prefix: options.prefix, env: process.env, now: Date.now() });
  } catch (err) {
    try {
      appendFileSync(join(findProject(cwd).dir, "hooks.log"), `${new Date().toISOString()} ${options.prefix}: ${(err as Error).message}\n`);
    } catch {
      // not in a drover project: nothing to record, nowhere to log
    }
    return null;
  }
}

// --- internal ---

function _readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

/**
 * @module Claude Code: our hooks merged into `.claude/settings(.local).json` and drover's MCP server into
 * `.mcp.json`, never touching anything else in either file; running it twice changes nothing the second time.
 * Claude Code reads settings only from the folder it starts in (not from parents, as it does `.mcp.json`), so a
 * worktree whose checkout lacks the project's hooks gets them in its own, untracked `settings.local.json`.
 */
import { lstatSync } from "node:fs";
import { join } from "node:path";
import { DroverError } from "../core/errors.ts";
import { readRegularFile, writeFileAtomic } from "../core/files.ts";
import { selfArgv, shellLine } from "./self.ts";

/** The events we hook and the matcher each needs. */
const EVENTS: Array<[event: string, matcher?: string]> = [
  ["SessionStart"],
  ["PostToolUse", "*"],
  ["Stop"],
  ["SessionEnd"],
];

/** The env var `.mcp.json` takes the token from: the token itself is never written to a committed file. */
export const TOKEN_ENV = "DROVER_TOKEN";

/** Where a folder's shared (committed) Claude settings live. */
export const PROJECT_SETTINGS = ".claude/settings.json";
/** Where a folder's own, never committed Claude settings live. */
export const LOCAL_SETTINGS = ".claude/settings.local.json";

/**
 * Larger JSON files are not read: a worktree's settings are whatever was committed, and the daemon reads them
 * (a symlink to `/dev/zero` there must not fill its memory).
 */
const MAX_JSON_BYTES = 1024 * 1024;

type Json = Record<string, unknown>;

/** The hook command drover writes into Claude settings: this drover, as a command line for the hook's shell. */
export function claudeHookCommand(): string {
  return shellLine([...selfArgv(), "hook", "claude"]);
}

/** Adds our hook to each event that does not run it yet; returns the events it was added to. */
export function mergeClaudeSettings(settings: Json, command: string): string[] {
  if (settings.hooks !== undefined && !_isObject(settings.hooks))
    throw new DroverError("invalid_input", 'Cannot merge hooks: "hooks" is not an object');
  const hooks = (settings.hooks ??= {}) as Record<string, unknown>;
  const added: string[] = [];
  for (const [event, matcher] of EVENTS) {
    const groups = (hooks[event] ??= []);
    if (!Array.isArray(groups))
      throw new DroverError("invalid_input", `Cannot merge hooks: "hooks.${event}" is not a list`);
    const present = groups.some(
      (g) => _isObject(g) && Array.isArray(g.hooks) && g.hooks.some((h) => _isObject(h) && h.command === command),
    );
    if (present) continue;
    groups.push({ ...(matcher ? { matcher } : {}), hooks: [{ type: "command", command, timeout: 5 }] });
    added.push(event);
  }
  return added;
}

/** Registers drover's HTTP MCP server; false when it was already there as is. */
export function mergeMcpServers(doc: Json, url: string): boolean {
  if (doc.mcpServers !== undefined && !_isObject(doc.mcpServers))
    throw new DroverError("invalid_input", 'Cannot merge ".mcp.json": "mcpServers" is not an object');
  const servers = (doc.mcpServers ??= {}) as Json;
  const entry = { type: "http", url, headers: { Authorization: `Bearer \${${TOKEN_ENV}}` } };
  if (JSON.stringify(servers.drover) === JSON.stringify(entry)) return false;
  servers.drover = entry;
  return true;
}

/**
 * The drover hook command a folder's Claude settings run (`drover hook claude`, or a path to drover), or null.
 * Only says whether drover is integrated there: the command is the folder's text, never one to copy elsewhere.
 */
export function droverHookCommand(dir: string): string | null {
  for (const file of [PROJECT_SETTINGS, LOCAL_SETTINGS]) {
    const read = readJsonObject(join(dir, file));
    const hooks = read && "doc" in read ? read.doc.hooks : undefined;
    for (const groups of _isObject(hooks) ? Object.values(hooks) : []) {
      for (const group of Array.isArray(groups) ? groups : []) {
        for (const hook of _isObject(group) && Array.isArray(group.hooks) ? group.hooks : []) {
          if (_isObject(hook) && typeof hook.command === "string" && / hook claude$/.test(hook.command))
            return hook.command;
        }
      }
    }
  }
  return null;
}

/**
 * Gives a worktree drover's hooks when the project is integrated and the worktree's checkout has none (the
 * settings were never committed): written into its `settings.local.json`, as drover's own command (the project's
 * settings may hold anything before " hook claude"). Returns that file's path inside the worktree, or null when
 * nothing was written (drover is not integrated, the checkout carries the hooks, or what it committed there is
 * not a folder and a JSON object drover may change).
 */
export function carryClaudeHooks(root: string, worktree: string): string | null {
  if (!droverHookCommand(root) || droverHookCommand(worktree)) return null;
  // a committed `.claude` that is a symlink (or a file) is left alone: drover writes only inside the worktree
  const folder = lstatSync(join(worktree, ".claude"), { throwIfNoEntry: false });
  if (folder && !folder.isDirectory()) return null;
  try {
    updateJsonFile(join(worktree, LOCAL_SETTINGS), (doc) => mergeClaudeSettings(doc, claudeHookCommand()).length > 0);
  } catch (err) {
    // committed content drover may not change (a symlink, not an object): no reason to fail the worktree
    if (err instanceof DroverError) return null;
    throw err;
  }
  return LOCAL_SETTINGS;
}

/**
 * A JSON object file, read as a regular file of at most 1 MiB, never through a symlink: its object, null when
 * nothing is there, or why it cannot be used.
 */
export function readJsonObject(file: string): { doc: Json } | { error: string } | null {
  const read = readRegularFile(file, { maxBytes: MAX_JSON_BYTES });
  if (!read || "error" in read) return read;
  let doc: unknown;
  try {
    doc = JSON.parse(read.text);
  } catch {
    return { error: "it is not valid JSON" };
  }
  return _isObject(doc) ? { doc } : { error: "it is not a JSON object" };
}

/** A JSON object file to change: {} when missing; anything else than a JSON object is refused, naming the file. */
export function loadJsonObject(file: string): Json {
  const read = readJsonObject(file);
  if (read && "error" in read)
    throw new DroverError("invalid_input", `Cannot update "${file}": ${read.error} (left as it is)`);
  return read?.doc ?? {};
}

/** Writes a JSON object file as drover writes them all (indented, atomically). */
export function writeJsonFile(file: string, doc: Json): void {
  writeFileAtomic(file, JSON.stringify(doc, null, 2) + "\n");
}

/** Reads a JSON object file ({} when missing), applies `change`, and writes it back only if it changed. */
export function updateJsonFile(file: string, change: (doc: Json) => boolean): boolean {
  const doc = loadJsonObject(file);
  if (!change(doc)) return false;
  writeJsonFile(file, doc);
  return true;
}

// --- internal ---

function _isObject(v: unknown): v is Json {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

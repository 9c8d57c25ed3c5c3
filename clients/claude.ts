/**
 * @module Claude Code: our hooks merged into `.claude/settings(.local).json` and drover's MCP server into
 * `.mcp.json`, never touching anything else in either file; running it twice changes nothing the second time.
 * Claude Code reads settings only from the folder it starts in (not from parents, as it does `.mcp.json`), so a
 * worktree whose checkout lacks the project's hooks gets them in its own, untracked `settings.local.json`.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DroverError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";

/** The events we hook and the matcher each needs. */
const EVENTS: Array<[event: string, matcher?: string]> = [
  ["SessionStart"],
  ["PostToolUse", "*"],
  ["Stop"],
  ["SessionEnd"],
];

/** The env var `.mcp.json` takes the token from: the token itself is never written to a committed file. */
export const TOKEN_ENV = "DROVER_TOKEN";

/** Where a folder's own, never committed Claude settings live. */
export const LOCAL_SETTINGS = ".claude/settings.local.json";

type Json = Record<string, unknown>;

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

/** The drover hook command a folder's Claude settings run (`drover hook claude`, or a path to drover), or null. */
export function droverHookCommand(dir: string): string | null {
  for (const file of [".claude/settings.json", LOCAL_SETTINGS]) {
    const hooks = _readObject(join(dir, file))?.hooks;
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
 * Gives a worktree the project's drover hooks when its checkout has none (the settings were never committed):
 * written into its `settings.local.json`. Returns that file's path inside the worktree, or null when nothing was
 * needed (drover is not integrated, or the checkout carries the hooks).
 */
export function carryClaudeHooks(root: string, worktree: string): string | null {
  const command = droverHookCommand(root);
  if (!command || droverHookCommand(worktree)) return null;
  updateJsonFile(join(worktree, LOCAL_SETTINGS), (doc) => mergeClaudeSettings(doc, command).length > 0);
  return LOCAL_SETTINGS;
}

/** Reads a JSON object file ({} when missing), applies `change`, and writes it back only if it changed. */
export function updateJsonFile(file: string, change: (doc: Json) => boolean): boolean {
  let doc: Json = {};
  if (existsSync(file)) {
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      throw new DroverError("invalid_input", `Cannot update "${file}": it is not valid JSON (left as it is)`);
    }
    if (!_isObject(doc))
      throw new DroverError("invalid_input", `Cannot update "${file}": it is not a JSON object (left as it is)`);
  }
  if (!change(doc)) return false;
  writeFileAtomic(file, JSON.stringify(doc, null, 2) + "\n");
  return true;
}

// --- internal ---

function _readObject(file: string): Json | null {
  try {
    const doc: unknown = JSON.parse(readFileSync(file, "utf8"));
    return _isObject(doc) ? doc : null;
  } catch {
    return null;
  }
}

function _isObject(v: unknown): v is Json {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/**
 * @module Claude Code: our hooks merged into `.claude/settings(.local).json` and drover's MCP server into
 * `.mcp.json`, never touching anything else in either file; running it twice changes nothing the second time.
 */
import { existsSync, readFileSync } from "node:fs";
import { DroverError } from "../../core/errors.ts";
import { writeFileAtomic } from "../../core/files.ts";

/** The events we hook and the matcher each needs. */
const EVENTS: Array<[event: string, matcher?: string]> = [
  ["SessionStart"],
  ["PostToolUse", "*"],
  ["Stop"],
  ["SessionEnd"],
];

/** The env var `.mcp.json` takes the token from: the token itself is never written to a committed file. */
export const TOKEN_ENV = "DROVER_TOKEN";

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

function _isObject(v: unknown): v is Json {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

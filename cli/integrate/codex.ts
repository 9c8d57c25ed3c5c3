/**
 * @module Codex's `config.toml`: drover's MCP server and the notify hook, in blocks drover manages. Codex runs one
 * notify command: when the user has their own, drover writes a small wrapper beside the config that runs theirs,
 * then drover's, and points notify at it (their line stays in the file, commented out, saying where it went).
 * Beside it, `hooks.json` (Claude Code's format, which Codex reads too) gets drover's session hooks: SessionStart
 * tells the model its agent id, which otherwise it could not know (it is derived from the thread id).
 */
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadJsonObject, mergeClaudeSettings, TOKEN_ENV, writeJsonFile } from "../../clients/claude.ts";
import { shellLine } from "../../clients/self.ts";
import { DroverError } from "../../core/errors.ts";
import { writeFileAtomic } from "../../core/files.ts";
import { blockOf, withBlock } from "./text-blocks.ts";

const TOML_TOP = { start: "# >>> drover notify (managed by `drover integrate codex`)", end: "# <<< drover notify" };
const TOML_MCP = { start: "# >>> drover mcp (managed by `drover integrate codex`)", end: "# <<< drover mcp" };
/** The wrapper's name, beside the config it serves. */
export const NOTIFY_WRAPPER = "drover-notify";
const MOVED = "# drover: moved into drover-notify, which runs it, then drover: ";

/** What Codex will use from a config: drover's MCP URL and its token variable, and the notify command. */
export interface CodexSettings {
  url?: string;
  tokenEnv?: string;
  notify?: string[];
}

export function mcpBlock(url: string): string {
  return `[mcp_servers.drover]\nurl = "${url}"\nbearer_token_env_var = "${TOKEN_ENV}"`;
}

export function notifyLine(argv: readonly string[]): string {
  return `notify = ${JSON.stringify(argv)}`;
}

/**
 * Merges drover into a Codex config file; says what it did, one line each. Everything is decided before anything
 * is written: a config (or `hooks.json`) drover cannot merge into is refused as it is, and the files are written
 * in the order that never leaves a config pointing at a missing wrapper.
 */
export function mergeCodexConfig(file: string, { url, hook }: { url: string; hook: readonly string[] }): string[] {
  const said: string[] = [];
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  let current: CodexSettings;
  try {
    current = _settings(Bun.TOML.parse(existing));
  } catch (err) {
    throw new DroverError(
      "invalid_input",
      `Cannot merge "${file}": it is not valid TOML (left as it is): ${(err as Error).message}`,
    );
  }
  const hooksFile = join(dirname(file), "hooks.json");
  const hooks = loadJsonObject(hooksFile);
  const hooksAdded = mergeClaudeSettings(hooks, shellLine(hook)).length > 0;
  let text = existing;
  let notify = hook;
  let wrapped: { wrapper: string; theirs: string[] } | null = null;
  if (blockOf(existing, TOML_TOP) !== null)
    notify = current.notify ?? hook; // the wrapper, once it was made
  else if (current.notify) {
    _checkMovable(file, existing);
    wrapped = { wrapper: join(dirname(file), NOTIFY_WRAPPER), theirs: current.notify };
    text = existing.replace(/^(\s*notify\s*=.*)$/m, `${MOVED}$1`);
    notify = [wrapped.wrapper];
    said.push(
      `${file}: your notify ${JSON.stringify(wrapped.theirs)} now runs from ${wrapped.wrapper}, followed by drover's`,
    );
  }
  text = withBlock(text, notifyLine(notify), { ...TOML_TOP, where: "top" });
  text = withBlock(text, mcpBlock(url), { ...TOML_MCP, where: "bottom" });
  try {
    Bun.TOML.parse(text);
  } catch (err) {
    throw new DroverError(
      "internal",
      `"${file}" would no longer parse after the merge (left as it is): ${(err as Error).message}`,
    );
  }
  if (wrapped) _writeWrapper(wrapped.wrapper, [wrapped.theirs, hook]);
  if (text !== existing) writeFileAtomic(file, text);
  if (hooksAdded) {
    writeJsonFile(hooksFile, hooks);
    said.push(`${hooksFile}: drover's session hooks added (codex exec runs them with --dangerously-bypass-hook-trust)`);
  }
  said.push(text !== existing ? `${file}: drover added` : `${file}: drover already there`);
  return said;
}

/** What Codex will use from a config file; null when there is none or it does not parse. */
export function readCodexConfig(file: string): CodexSettings | null {
  if (!existsSync(file)) return null;
  try {
    return _settings(Bun.TOML.parse(readFileSync(file, "utf8")));
  } catch {
    return null;
  }
}

// --- internal ---

function _settings(doc: unknown): CodexSettings {
  const { notify, mcp_servers } = doc as {
    notify?: unknown;
    mcp_servers?: { drover?: { url?: unknown; bearer_token_env_var?: unknown } };
  };
  const drover = mcp_servers?.drover;
  return {
    url: typeof drover?.url === "string" ? drover.url : undefined,
    tokenEnv: typeof drover?.bearer_token_env_var === "string" ? drover.bearer_token_env_var : undefined,
    notify: Array.isArray(notify) ? notify.map(String) : undefined,
  };
}

/** Refuses a user's notify drover cannot move: only a one-line `notify = [...]` is commented out. */
function _checkMovable(file: string, text: string): void {
  if (!/^\s*notify\s*=\s*\[.*\]\s*$/m.test(text)) {
    throw new DroverError(
      "invalid_input",
      `Cannot merge "${file}": its notify spans several lines; put it on one line, or make it run "drover hook codex" too`,
    );
  }
}

function _writeWrapper(file: string, commands: ReadonlyArray<readonly string[]>): void {
  const lines = commands.map((argv, i) => `${i === commands.length - 1 ? "exec " : ""}${shellLine(argv)} "$@"`);
  const text = [
    "#!/bin/sh",
    "# Written by `drover integrate codex`: Codex runs one notify command; this runs the one set before, then drover's.",
    ...lines.slice(0, -1).map((l) => `${l} || true`),
    lines.at(-1)!,
    "",
  ].join("\n");
  writeFileAtomic(file, text);
  chmodSync(file, 0o755);
}

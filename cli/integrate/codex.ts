/**
 * @module Codex's `config.toml`: drover's MCP server and the notify hook, in blocks drover manages. Codex runs one
 * notify command: when the user has their own, drover writes a small wrapper beside the config that runs theirs,
 * then drover's, and points notify at it (their line stays in the file, commented out, saying where it went).
 * Beside it, `hooks.json` (Claude Code's format, which Codex reads too) gets drover's session hooks: SessionStart
 * tells the model its agent id, which otherwise it could not know (it is derived from the thread id).
 */
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { mergeClaudeSettings, TOKEN_ENV, updateJsonFile } from "../../clients/claude.ts";
import { shellLine } from "../../clients/self.ts";
import { DroverError } from "../../core/errors.ts";
import { writeFileAtomic } from "../../core/files.ts";
import { readBlock, upsertBlock } from "./text-blocks.ts";

const TOML_TOP = { start: "# >>> drover notify (managed by `drover integrate codex`)", end: "# <<< drover notify" };
const TOML_MCP = { start: "# >>> drover mcp (managed by `drover integrate codex`)", end: "# <<< drover mcp" };
/** The wrapper's name, beside the config it serves. */
export const NOTIFY_WRAPPER = "drover-notify";
const MOVED = "# drover: moved into drover-notify, which runs it, then drover: ";

export function mcpBlock(url: string): string {
  return `[mcp_servers.drover]\nurl = "${url}"\nbearer_token_env_var = "${TOKEN_ENV}"`;
}

export function notifyLine(argv: readonly string[]): string {
  return `notify = ${JSON.stringify(argv)}`;
}

/** Merges drover into a Codex config file; says what it did, one line each. */
export function mergeCodexConfig(file: string, { url, hook }: { url: string; hook: readonly string[] }): string[] {
  const said: string[] = [];
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  let notify = hook;
  if (readBlock(file, TOML_TOP) === null) {
    const theirs = _userNotify(file, existing);
    if (theirs) {
      const wrapper = join(dirname(file), NOTIFY_WRAPPER);
      _writeWrapper(wrapper, [theirs, hook]);
      writeFileAtomic(file, existing.replace(/^(\s*notify\s*=.*)$/m, `${MOVED}$1`));
      said.push(`${file}: your notify ${JSON.stringify(theirs)} now runs from ${wrapper}, followed by drover's`);
      notify = [wrapper];
    }
  } else notify = _managedNotify(file) ?? hook;
  const top = upsertBlock(file, notifyLine(notify), { ...TOML_TOP, where: "top" });
  const mcp = upsertBlock(file, mcpBlock(url), { ...TOML_MCP, where: "bottom" });
  const hooksFile = join(dirname(file), "hooks.json");
  const hooks = updateJsonFile(hooksFile, (doc) => mergeClaudeSettings(doc, shellLine(hook)).length > 0);
  if (hooks)
    said.push(`${hooksFile}: drover's session hooks added (codex exec runs them with --dangerously-bypass-hook-trust)`);
  try {
    Bun.TOML.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new DroverError("internal", `"${file}" no longer parses after the merge: ${(err as Error).message}`);
  }
  said.push(top || mcp ? `${file}: drover added` : `${file}: drover already there`);
  return said;
}

/** What Codex will use from a config: drover's MCP URL and its token variable, and the notify command. */
export function readCodexConfig(file: string): { url?: string; tokenEnv?: string; notify?: string[] } | null {
  if (!existsSync(file)) return null;
  try {
    const doc = Bun.TOML.parse(readFileSync(file, "utf8")) as {
      notify?: unknown;
      mcp_servers?: { drover?: { url?: unknown; bearer_token_env_var?: unknown } };
    };
    const drover = doc.mcp_servers?.drover;
    return {
      url: typeof drover?.url === "string" ? drover.url : undefined,
      tokenEnv: typeof drover?.bearer_token_env_var === "string" ? drover.bearer_token_env_var : undefined,
      notify: Array.isArray(doc.notify) ? doc.notify.map(String) : undefined,
    };
  } catch {
    return null;
  }
}

// --- internal ---

/** The user's own notify command (outside drover's block), or null. Only a one-line `notify = [...]` is moved. */
function _userNotify(file: string, text: string): string[] | null {
  const notify = readCodexConfig(file)?.notify;
  if (!notify) return null;
  if (!/^\s*notify\s*=\s*\[.*\]\s*$/m.test(text)) {
    throw new DroverError(
      "invalid_input",
      `Cannot merge "${file}": its notify spans several lines; put it on one line, or make it run "drover hook codex" too`,
    );
  }
  return notify;
}

/** The command drover's own notify block runs now (the wrapper, once it was made). */
function _managedNotify(file: string): string[] | null {
  const block = readBlock(file, TOML_TOP);
  try {
    const doc = Bun.TOML.parse(block ?? "") as { notify?: unknown };
    return Array.isArray(doc.notify) ? doc.notify.map(String) : null;
  } catch {
    return null;
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

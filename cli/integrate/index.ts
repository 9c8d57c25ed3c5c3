/**
 * @module `drover integrate claude | codex | agents-md` and `drover integrate --check`: one command away from
 * the agents a user already runs. Shared files are merged, never clobbered, and a rerun changes nothing.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type CommandDef, defineCommand } from "citty";
import { loadConfig } from "../../core/config.ts";
import { readDaemon } from "../../core/daemon-file.ts";
import { DroverError } from "../../core/errors.ts";
import { readToken } from "../../core/identity.ts";
import { findProject, type Paths } from "../../core/paths.ts";
import { renderResult } from "../output.ts";
import { mergeClaudeSettings, mergeMcpServers, TOKEN_ENV, updateJsonFile } from "./claude.ts";
import { readBlock, upsertBlock } from "./text-blocks.ts";

const CLAUDE_COMMAND = "drover hook claude";
const CODEX_NOTIFY = '["drover", "hook", "codex"]';
const MD = { start: "<!-- drover:start -->", end: "<!-- drover:end -->" };
const TOML_TOP = { start: "# >>> drover notify (managed by `drover integrate codex`)", end: "# <<< drover notify" };
const TOML_MCP = { start: "# >>> drover mcp (managed by `drover integrate codex`)", end: "# <<< drover mcp" };

const claude = defineCommand({
  meta: {
    name: "claude",
    description: "Claude Code: heartbeat hooks in .claude/settings.json, drover's MCP server in .mcp.json",
  },
  args: {
    local: { type: "boolean", description: "Write .claude/settings.local.json (not committed) instead" },
    command: { type: "string", description: `The hook command (default "${CLAUDE_COMMAND}")` },
  },
  async run({ args }) {
    const paths = findProject();
    const settingsFile = join(paths.root, ".claude", args.local ? "settings.local.json" : "settings.json");
    const url = await mcpUrl(paths);
    let added: string[] = [];
    const settingsChanged = updateJsonFile(
      settingsFile,
      (doc) => (added = mergeClaudeSettings(doc, args.command ?? CLAUDE_COMMAND)).length > 0,
    );
    const mcpChanged = updateJsonFile(join(paths.root, ".mcp.json"), (doc) => mergeMcpServers(doc, url));
    console.log(
      settingsChanged ? `${settingsFile}: hooks added for ${added.join(", ")}` : `${settingsFile}: hooks already there`,
    );
    console.log(
      mcpChanged
        ? `${join(paths.root, ".mcp.json")}: drover MCP server added`
        : `${join(paths.root, ".mcp.json")}: drover MCP server already there`,
    );
    console.log(`Claude Code reads the token from $${TOKEN_ENV}: export ${TOKEN_ENV}="$(cat ${paths.token})"`);
  },
});

const codex = defineCommand({
  meta: {
    name: "codex",
    description: "Codex: drover's MCP server and the notify hook for config.toml (printed, or --write FILE)",
  },
  args: { write: { type: "string", description: "Merge into this config.toml instead of printing" } },
  async run({ args }) {
    const paths = findProject();
    const mcp = `[mcp_servers.drover]\nurl = "${await mcpUrl(paths)}"\nbearer_token_env_var = "${TOKEN_ENV}"`;
    const notify = `notify = ${CODEX_NOTIFY}`;
    if (!args.write) {
      console.log(`# top of ~/.codex/config.toml (a top-level key)\n${notify}\n\n# anywhere after it\n${mcp}`);
      return;
    }
    const file = args.write;
    const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
    const ownsNotify = readBlock(file, TOML_TOP) !== null;
    const userNotify = !ownsNotify && /^\s*notify\s*=/m.test(existing);
    const changedTop = userNotify ? false : upsertBlock(file, notify, { ...TOML_TOP, where: "top" });
    const changedMcp = upsertBlock(file, mcp, { ...TOML_MCP, where: "bottom" });
    try {
      Bun.TOML.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new DroverError("internal", `"${file}" no longer parses after the merge: ${(err as Error).message}`);
    }
    if (userNotify)
      console.error(`drover: "${file}" already sets notify; add "drover hook codex" to it by hand to get heartbeats`);
    console.log(changedTop || changedMcp ? `${file}: drover added` : `${file}: drover already there`);
  },
});

const agentsMd = defineCommand({
  meta: {
    name: "agents-md",
    description: "The drover workflow for agents, as a block in AGENTS.md (or --file CLAUDE.md)",
  },
  args: { file: { type: "string", description: "Which file (default AGENTS.md at the project root)" } },
  run({ args }) {
    const paths = findProject();
    const file = join(paths.root, args.file ?? "AGENTS.md");
    const changed = upsertBlock(file, AGENT_INSTRUCTIONS, { ...MD, where: "bottom" });
    console.log(changed ? `${file}: drover workflow written` : `${file}: drover workflow already up to date`);
  },
});

export const integrate = defineCommand({
  meta: { name: "integrate", description: "Plug drover into Claude Code, Codex and the instructions agents read" },
  args: {
    check: { type: "boolean", description: "Report what is installed and whether the daemon answers with the token" },
  },
  subCommands: { claude, codex, "agents-md": agentsMd } as Record<string, CommandDef<any>>,
  async run({ args, rawArgs }) {
    if (rawArgs.some((a) => ["claude", "codex", "agents-md"].includes(a))) return; // a subcommand ran
    if (!args.check)
      throw new DroverError("invalid_input", 'Name an agent (claude, codex, agents-md) or pass "--check"');
    console.log(renderResult(await integrationChecks(findProject())));
  },
});

export const AGENT_INSTRUCTIONS = `## Working with drover

This project coordinates its agents with drover. Use it instead of guessing what others are doing:

1. Take work atomically: \`drover item next --agent $DROVER_AGENT\` claims the best ready item and moves it
   into coding for you; \`drover item start --id <id> --agent $DROVER_AGENT --path-only\` begins a given one
   and prints its worktree. Keep the \`fence\` they answer with.
2. Say you are alive while you work: \`drover heartbeat --agent $DROVER_AGENT --item <id>\` (the hooks may do
   this for you); it keeps your claim alive.
3. Move the item as it progresses: \`drover item move --id <id> --to qa --agent $DROVER_AGENT --fence <fence>\`,
   then \`merge\` and \`done\`. A refusal names the legal targets or the holder: do not work around it.
4. Report what the work cost: \`drover usage report --agent $DROVER_AGENT --item <id> --input_tokens N --output_tokens N\`.
5. Work in the item's worktree, \`.drover/worktrees/<id>\`, on branch \`drover/item/<id>\`; it is removed when the
   item ends only if nothing in it would be lost.
6. Stuck or done for now: \`drover item release --id <id> --agent $DROVER_AGENT --fence <fence>\`.

Every command takes \`--json\`; \`drover <command> --help\` lists the flags. The same operations are MCP tools.`;

/** What is installed where, and whether the daemon answers with the token. */
export async function integrationChecks(paths: Paths): Promise<Array<{ check: string; ok: boolean; detail: string }>> {
  const settings = ["settings.json", "settings.local.json"]
    .map((f) => join(paths.root, ".claude", f))
    .filter((f) => _json(f)?.hooks);
  const hooked = settings.filter((f) => JSON.stringify(_json(f)?.hooks).includes("drover hook claude"));
  const mcp = (_json(join(paths.root, ".mcp.json"))?.mcpServers as Record<string, unknown> | undefined)?.drover as
    | { url?: string }
    | undefined;
  const md = ["AGENTS.md", "CLAUDE.md"].filter((f) => readBlock(join(paths.root, f), MD) !== null);
  const token = process.env[TOKEN_ENV] || _safe(() => readToken(paths));
  const daemon = readDaemon(paths);
  let reach = "not running";
  if (daemon?.url) {
    const res = await fetch(`${daemon.url}/api/ops`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(2000),
    }).catch(() => null);
    reach = res
      ? res.ok
        ? `answers at ${daemon.url} with the token`
        : `answers at ${daemon.url} but refuses the token (HTTP ${res.status})`
      : `does not answer at ${daemon.url}`;
  }
  return [
    {
      check: "claude hooks",
      ok: hooked.length > 0,
      detail: hooked.length ? hooked.join(", ") : "not installed (drover integrate claude)",
    },
    {
      check: "claude mcp",
      ok: !!mcp,
      detail: mcp ? `.mcp.json → ${mcp.url}` : "not registered (drover integrate claude)",
    },
    {
      check: "agent instructions",
      ok: md.length > 0,
      detail: md.length ? md.join(", ") : "none (drover integrate agents-md)",
    },
    {
      check: "token env",
      ok: !!process.env[TOKEN_ENV],
      detail: process.env[TOKEN_ENV] ? `$${TOKEN_ENV} is set` : `$${TOKEN_ENV} is not set in this shell`,
    },
    { check: "daemon", ok: reach.includes("with the token"), detail: reach },
  ];
}

// --- internal ---

/** The MCP URL agents should use: the running daemon's, else the configured address. */
async function mcpUrl(paths: Paths): Promise<string> {
  const running = readDaemon(paths)?.url;
  if (running) return `${running}/mcp`;
  const { config } = await loadConfig(paths.config);
  return `http://${config.server.host}:${config.server.port || 4317}/mcp`;
}

function _json(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

function _safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/**
 * @module `drover integrate claude | codex | agents-md` and `drover integrate --check`: one command away from
 * the agents a user already runs. Shared files are merged, never clobbered, and a rerun changes nothing. The MCP
 * URL written is the daemon's stable one (`server.port`); hooks and notify run this drover by a command that
 * works from the agents' shells (an absolute path when `drover` is not on PATH).
 */
import { join } from "node:path";
import { type CommandDef, defineCommand } from "citty";
import {
  claudeHookCommand,
  LOCAL_SETTINGS,
  mergeClaudeSettings,
  mergeMcpServers,
  PROJECT_SETTINGS,
  TOKEN_ENV,
  updateJsonFile,
} from "../../clients/claude.ts";
import { selfArgv } from "../../clients/self.ts";
import { loadConfig } from "../../core/config.ts";
import { readDaemon } from "../../core/daemon-file.ts";
import { DroverError } from "../../core/errors.ts";
import { findProject, type Paths } from "../../core/paths.ts";
import { carryIntegrationToAll } from "../../features/worktrees/integration.ts";
import { renderResult } from "../output.ts";
import { codexConfigFile, integrationChecks } from "./checks.ts";
import { mcpBlock, mergeCodexConfig, notifyLine } from "./codex.ts";
import { MD_MARKERS, upsertBlock } from "./text-blocks.ts";

const claude = defineCommand({
  meta: {
    name: "claude",
    description: "Claude Code: heartbeat hooks in .claude/settings.json, drover's MCP server in .mcp.json",
  },
  args: {
    local: { type: "boolean", description: "Write .claude/settings.local.json (not committed) instead" },
    command: {
      type: "string",
      description: 'The hook command (default "drover hook claude", by path when not on PATH)',
    },
  },
  async run({ args }) {
    const paths = findProject();
    const settingsFile = join(paths.root, args.local ? LOCAL_SETTINGS : PROJECT_SETTINGS);
    const url = await mcpUrl(paths);
    const command = args.command ?? claudeHookCommand();
    let added: string[] = [];
    const settingsChanged = updateJsonFile(
      settingsFile,
      (doc) => (added = mergeClaudeSettings(doc, command)).length > 0,
    );
    const mcpFile = join(paths.root, ".mcp.json");
    const mcpChanged = updateJsonFile(mcpFile, (doc) => mergeMcpServers(doc, url));
    console.log(
      settingsChanged ? `${settingsFile}: hooks added for ${added.join(", ")}` : `${settingsFile}: hooks already there`,
    );
    console.log(mcpChanged ? `${mcpFile}: drover MCP server at ${url}` : `${mcpFile}: drover MCP server already there`);
    const carried = await carryIntegrationToAll(paths.root, paths.worktrees);
    if (carried) console.log(`${paths.worktrees}: the hooks carried into ${carried} worktree(s), untracked`);
    console.log(`Claude Code reads the token from $${TOKEN_ENV}: export ${TOKEN_ENV}="$(cat ${paths.token})"`);
  },
});

const codex = defineCommand({
  meta: {
    name: "codex",
    description: "Codex: drover's MCP server and the notify hook for config.toml (printed, or --write FILE)",
  },
  args: { write: { type: "string", description: `Merge into this config.toml (yours: ${codexConfigFile()})` } },
  async run({ args }) {
    const paths = findProject();
    const url = await mcpUrl(paths);
    const hook = [...selfArgv(), "hook", "codex"];
    if (!args.write) {
      console.log(
        `# top of ${codexConfigFile()} (a top-level key)\n${notifyLine(hook)}\n\n# anywhere after it\n${mcpBlock(url)}\n\n` +
          "# Codex runs one notify command: if yours already sets one, use --write instead, which keeps yours\n" +
          "# in a small wrapper that runs it, then drover's.",
      );
      return;
    }
    for (const line of mergeCodexConfig(args.write, { url, hook })) console.log(line);
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
    const changed = upsertBlock(file, AGENT_INSTRUCTIONS, { ...MD_MARKERS, where: "bottom" });
    console.log(changed ? `${file}: drover workflow written` : `${file}: drover workflow already up to date`);
  },
});

export const integrate = defineCommand({
  meta: { name: "integrate", description: "Plug drover into Claude Code, Codex and the instructions agents read" },
  args: {
    check: {
      type: "boolean",
      description: "Try what each client will use (its MCP URL, with the token); exit 1 when one would fail",
    },
    "codex-config": { type: "string", description: `The Codex config to check (default ${codexConfigFile()})` },
  },
  subCommands: { claude, codex, "agents-md": agentsMd } as Record<string, CommandDef<any>>,
  async run({ args, rawArgs }) {
    if (rawArgs.some((a) => ["claude", "codex", "agents-md"].includes(a))) return; // a subcommand ran
    if (!args.check)
      throw new DroverError("invalid_input", 'Name an agent (claude, codex, agents-md) or pass "--check"');
    const checks = await integrationChecks(findProject(), { codexConfig: args["codex-config"] });
    console.log(renderResult(checks));
    const failed = checks.filter((c) => !c.ok && c.check !== "agent instructions" && c.check !== "claude hooks");
    if (failed.length)
      throw new DroverError("conflict", `Integration check failed: ${failed.map((c) => c.detail).join("; ")}`);
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

// --- internal ---

/**
 * The MCP URL agents should keep: `server.host:server.port`, which a restarted daemon serves again. A daemon
 * running elsewhere (`--port 0`, a new port at each start) is used, and said to be unstable.
 */
async function mcpUrl(paths: Paths): Promise<string> {
  const { config } = await loadConfig(paths.config);
  const stable = config.server.port ? `http://${config.server.host}:${config.server.port}` : null;
  const running = readDaemon(paths)?.url;
  if (running && running !== stable) {
    console.error(
      `drover: the daemon runs at ${running}, not on server.port: clients written now stop working when it restarts ` +
        "(set server.port in .drover/config.toml, or run drover integrate again after each start)",
    );
    return `${running}/mcp`;
  }
  return `${stable ?? "http://127.0.0.1:4317"}/mcp`;
}

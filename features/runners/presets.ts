/**
 * @module What a run executes: the preset's command (or the runner's own `command`) with `{prompt}` and the other
 * fields filled in, and the client's integration on its command line — drover's MCP server and hooks for Claude
 * Code, the MCP server and notify for Codex — so the process's hooks, its MCP calls and drover name the same agent
 * and item without any file written into the worktree. The environment carries the same ids. The prompt holds an
 * item's title and body, which whoever can create an item writes: for a client drover knows it comes last, after
 * `--`, so no prompt is ever read as an option (`--dangerously-bypass-approvals-and-sandbox` as a title).
 */
import { mergeClaudeSettings, mergeMcpServers, TOKEN_ENV } from "../../clients/claude.ts";
import { selfArgv, shellLine } from "../../clients/self.ts";
import type { Preset, Runner } from "./contract.ts";

/** Where the prompt goes in a command: for a client drover knows, an argument holding it is moved after `--`. */
const PROMPT = "{prompt}";

/** The preset's command when the runner gives none. Unattended: Claude may edit files and call drover's tools. */
const COMMANDS: Record<Preset, string[]> = {
  claude: [
    "claude",
    "-p",
    PROMPT,
    "--output-format",
    "stream-json",
    "--verbose",
    "--permission-mode",
    "acceptEdits",
    "--allowedTools",
    "mcp__drover",
  ],
  codex: ["codex", "exec", "--json", "-s", "workspace-write", PROMPT],
  command: [],
};

export interface RunFields {
  run: string;
  agent: string;
  item: { id: string; title: string; body: string; stage: string };
  fence: number;
  worktree: string;
  prompt: string;
  /** The daemon's URL and token, for the MCP server the client is given. */
  url: string;
  token: string;
}

/** The argv and environment of one run. */
export function runCommand(runner: Runner, fields: RunFields): { argv: string[]; env: Record<string, string> } {
  const base = runner.command.length ? runner.command : COMMANDS[runner.preset];
  const values: Record<string, string> = {
    prompt: fields.prompt,
    id: fields.item.id,
    title: fields.item.title,
    body: fields.item.body,
    stage: fields.item.stage,
    worktree: fields.worktree,
    agent: fields.agent,
    run: fields.run,
  };
  const fill = (args: string[]) => args.map((arg) => fillTemplate(arg, values));
  // a `command` agent's parser is its own: its arguments stay as its runner wrote them
  const client = runner.preset !== "command";
  const isPrompt = (arg: string) => client && arg.includes(PROMPT);
  const prompt = fill(base.filter(isPrompt));
  const argv = [
    ...fill(base.filter((arg) => !isPrompt(arg))),
    ..._integration(runner.preset, fields.url),
    ...(prompt.length ? ["--", ...prompt] : []),
  ];
  const env = {
    // Codex says a limit's reset time in local time without a zone: in UTC drover can read it
    ...(runner.preset === "codex" ? { TZ: "UTC" } : {}),
    ...runner.env,
    DROVER_AGENT: fields.agent,
    DROVER_ITEM: fields.item.id,
    DROVER_FENCE: String(fields.fence),
    DROVER_RUN: fields.run,
    DROVER_URL: fields.url,
    [TOKEN_ENV]: fields.token,
  };
  return { argv, env };
}

/** `{name}` replaced by its value; unknown names are left as they are (a literal brace in a command survives). */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{([a-z]+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? values[name]! : whole,
  );
}

// --- internal ---

function _integration(preset: Preset, url: string): string[] {
  // by absolute path: a run's PATH is the user's, where `drover` may be another version or missing
  const hook = [...selfArgv({ path: "" }), "hook", preset];
  const mcpUrl = `${url}/mcp`;
  if (preset === "claude") {
    const mcp: Record<string, unknown> = {};
    mergeMcpServers(mcp, mcpUrl);
    const settings: Record<string, unknown> = {};
    mergeClaudeSettings(settings, shellLine(hook));
    // `--mcp-config` takes several values: in one argument it cannot swallow what follows
    return [`--mcp-config=${JSON.stringify(mcp)}`, `--settings=${JSON.stringify(settings)}`];
  }
  if (preset === "codex") {
    return [
      "-c",
      `mcp_servers.drover.url=${JSON.stringify(mcpUrl)}`,
      "-c",
      `mcp_servers.drover.bearer_token_env_var=${JSON.stringify(TOKEN_ENV)}`,
      "-c",
      `notify=${JSON.stringify(hook)}`,
    ];
  }
  return [];
}

/**
 * @module Running the real Claude Code and Codex CLIs against the scripted APIs: each session gets a private home
 * (nothing of the real user's config, credentials or history leaks in or out), the flags that let it run unattended
 * as root, a timeout that kills its whole process group, and its output parsed. `prepareClaude`/`prepareCodex`
 * give the same environment to a test where drover itself starts the client.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureClient } from "./install.ts";

export interface ClientRun {
  exitCode: number;
  /** Killed after `timeoutMs`. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines, parsed (Claude's stream-json, Codex's `--json` events); other lines are skipped. */
  lines: any[];
  wallMs: number;
}

export interface ClientOptions {
  /** The folder the session starts in. */
  cwd: string;
  /** `AnthropicServer.url` or `OpenAIServer.url`. */
  apiUrl: string;
  /** A private home to use (and keep); by default a fresh one is made and removed after the run. */
  home?: string;
  /** More environment (DROVER_TOKEN, a PATH with `drover` on it); wins over the harness's. */
  env?: Record<string, string>;
  /** More command-line arguments, before the prompt. */
  args?: string[];
  /** Default 60 s. */
  timeoutMs?: number;
}

export interface ClaudeOptions extends ClientOptions {
  /**
   * Default `bypassPermissions` (with `IS_SANDBOX=1`, without which Claude Code refuses it as root): every tool,
   * MCP ones from `.mcp.json` included, runs without a prompt. Pass `default` and `allowedTools` to test prompts.
   */
  permissionMode?: "bypassPermissions" | "default" | "acceptEdits" | "dontAsk" | "plan";
  /** `--allowedTools`: `mcp__drover` allows every tool of that server. */
  allowedTools?: string[];
  /**
   * Default false: MCP tools are offered inline in `tools`. Claude Code's own default defers them behind
   * `ToolSearch` (named only in a system message), which a scripted model would have to call first.
   */
  toolSearch?: boolean;
  /**
   * Written to the private home's user settings (`$CLAUDE_CONFIG_DIR/settings.json`) when given. Project `.mcp.json`
   * servers run in `-p` without approval, but `claude mcp list` shows them "Pending approval" unless these say
   * `enableAllProjectMcpServers: true` (the project's own `settings.local.json` saying so is not enough).
   */
  userSettings?: Record<string, unknown>;
  /** `CLAUDE_CODE_MAX_RETRIES`, default 0: with its own default (10) one 429 turns into ~3 minutes of backoff. */
  maxRetries?: number;
}

export interface CodexOptions extends ClientOptions {
  /**
   * The rest of `$CODEX_HOME/config.toml`, after the harness's top-level keys (model, provider): top-level keys
   * (`notify = [...]`) first, then tables (`[mcp_servers.drover]`). Without it, what the file already holds after
   * those keys is kept (what `drover integrate` wrote into a `home` given again); the harness's keys are rewritten.
   */
  config?: string;
  /**
   * Default `bypass` (`--dangerously-bypass-approvals-and-sandbox`): shell commands may write and reach
   * 127.0.0.1 (the `drover` CLI talking to its daemon). `read-only` (Codex's default) and `workspace-write` cut
   * the network off.
   */
  sandbox?: "bypass" | "read-only" | "workspace-write" | "danger-full-access";
  /**
   * Default `drover-scripted`. An unknown model gets fallback metadata (one `error` item in `--json` says so) and
   * MCP tools inline; a known one (`gpt-5.5`) defers them behind a `tool_search` tool.
   */
  model?: string;
}

/** What to spawn for a Claude Code session: its binary, environment and home (for drover to start it itself). */
export async function prepareClaude(
  options: Omit<ClaudeOptions, "cwd" | "args" | "timeoutMs">,
): Promise<{ bin: string; env: Record<string, string>; home: string; args: string[] }> {
  const bin = await ensureClient("claude");
  const home = options.home ?? mkdtempSync(join(tmpdir(), "drover-claude-home-"));
  _prepareHome(home);
  mkdirSync(join(home, ".claude"), { recursive: true });
  if (options.userSettings) writeFileSync(join(home, ".claude", "settings.json"), JSON.stringify(options.userSettings));
  const env: Record<string, string> = {
    ..._baseEnv(home),
    CLAUDE_CONFIG_DIR: join(home, ".claude"),
    ANTHROPIC_BASE_URL: options.apiUrl,
    ANTHROPIC_API_KEY: "scripted",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_MAX_RETRIES: String(options.maxRetries ?? 0),
    ENABLE_TOOL_SEARCH: options.toolSearch ? "true" : "false",
    IS_SANDBOX: "1",
    ...options.env,
  };
  const args = ["--permission-mode", options.permissionMode ?? "bypassPermissions"];
  if (options.allowedTools?.length) args.push("--allowedTools", options.allowedTools.join(","));
  return { bin, env, home, args };
}

/** One `claude -p <prompt> --output-format stream-json --verbose` session. */
export async function runClaude(
  prompt: string,
  options: ClaudeOptions,
): Promise<ClientRun & { result: any; sessionId?: string }> {
  const { bin, env, home, args } = await prepareClaude(options);
  const cmd = [bin, "-p", ...args, "--output-format", "stream-json", "--verbose", ...(options.args ?? []), prompt];
  const run = await _withHome(home, !options.home, () => _spawn(cmd, options.cwd, env, options.timeoutMs));
  const result = run.lines.findLast((l) => l?.type === "result");
  return { ...run, result, sessionId: result?.session_id ?? run.lines[0]?.session_id };
}

/** `claude <args>` (`mcp list`, `--version`) with the same private home and environment as a session. */
export async function runClaudeCommand(args: string[], options: ClaudeOptions): Promise<ClientRun> {
  const { bin, env, home } = await prepareClaude(options);
  return _withHome(home, !options.home, () => _spawn([bin, ...args], options.cwd, env, options.timeoutMs));
}

/** What to spawn for a Codex session: its binary, environment and a `CODEX_HOME` with the provider configured. */
export async function prepareCodex(
  options: Omit<CodexOptions, "cwd" | "args" | "timeoutMs" | "sandbox">,
): Promise<{ bin: string; env: Record<string, string>; home: string }> {
  const bin = await ensureClient("codex");
  const home = options.home ?? mkdtempSync(join(tmpdir(), "drover-codex-home-"));
  _prepareHome(home);
  const codexHome = join(home, ".codex");
  mkdirSync(codexHome, { recursive: true });
  _writeCodexConfig(join(codexHome, "config.toml"), options);
  const env = { ..._baseEnv(home), CODEX_HOME: codexHome, DROVER_SCRIPTED_API_KEY: "scripted", ...options.env };
  return { bin, env, home };
}

/** One `codex exec --json <prompt>` session; `lines` are its JSONL events. */
export async function runCodex(
  prompt: string,
  options: CodexOptions,
): Promise<ClientRun & { threadId?: string; lastMessage?: string }> {
  const { bin, env, home } = await prepareCodex(options);
  const sandbox = options.sandbox ?? "bypass";
  const sandboxArgs = sandbox === "bypass" ? ["--dangerously-bypass-approvals-and-sandbox"] : ["-s", sandbox];
  // no update check or analytics: both would go to the internet; -c keeps them out of the config a test inspects
  const quiet = ["-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false"];
  const cmd = [bin, "exec", "--json", "--skip-git-repo-check", ...sandboxArgs, ...quiet, ...(options.args ?? [])];
  const run = await _withHome(home, !options.home, () => _spawn([...cmd, prompt], options.cwd, env, options.timeoutMs));
  const thread = run.lines.find((l) => l?.type === "thread.started");
  const message = run.lines.findLast((l) => l?.type === "item.completed" && l.item?.type === "agent_message");
  return { ...run, threadId: thread?.thread_id, lastMessage: message?.item?.text };
}

/** `codex <args>` (`mcp list`, `mcp get drover --json`) with the same private home and config as a session. */
export async function runCodexCommand(args: string[], options: CodexOptions): Promise<ClientRun> {
  const { bin, env, home } = await prepareCodex(options);
  return _withHome(home, !options.home, () => _spawn([bin, ...args], options.cwd, env, options.timeoutMs));
}

// --- internal ---

/** Only what a shell needs: the caller's PATH and locale, never their keys or client settings. */
function _baseEnv(home: string): Record<string, string> {
  const env: Record<string, string> = { HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
  for (const key of ["PATH", "LANG", "LC_ALL", "TMPDIR", "USER", "SHELL"]) {
    const value = process.env[key];
    if (value) env[key] = value;
  }
  return env;
}

/** An agent that commits in the private home needs a git identity; the real user's is out of reach by design. */
function _prepareHome(home: string): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, ".gitconfig"), "[user]\n\tname = drover-test\n\temail = drover-test@example.invalid\n");
}

const _HARNESS_END = "# --- end of the drover test harness's keys ---";

function _writeCodexConfig(file: string, options: { apiUrl: string; config?: string; model?: string }): void {
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  const at = existing.indexOf(_HARNESS_END);
  const rest = options.config ?? (at >= 0 ? existing.slice(at + _HARNESS_END.length) : existing);
  const provider = {
    name: "scripted",
    base_url: options.apiUrl,
    wire_api: "responses",
    env_key: "DROVER_SCRIPTED_API_KEY",
    // a scripted error is the answer under test, not a blip to retry
    request_max_retries: 0,
    stream_max_retries: 0,
  };
  // all top-level keys (the provider as an inline table), so the rest may start with top-level keys of its own
  const inline = Object.entries(provider).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  const harness = [
    `model = ${JSON.stringify(options.model ?? "drover-scripted")}`,
    `model_provider = "fake"`,
    `model_providers = { fake = { ${inline.join(", ")} } }`,
    _HARNESS_END,
  ];
  writeFileSync(file, [...harness, rest.trim(), ""].join("\n"));
}

async function _withHome<T>(home: string, owned: boolean, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    if (owned) rmSync(home, { recursive: true, force: true });
  }
}

async function _spawn(cmd: string[], cwd: string, env: Record<string, string>, timeoutMs = 60_000) {
  const started = performance.now();
  // its own process group, so a timeout also ends what the client started (hooks, MCP servers, shells)
  const proc = Bun.spawn(cmd, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    _killGroup(proc.pid);
  }, timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]).finally(() => clearTimeout(timer));
  const lines = stdout.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
  return { exitCode, timedOut, stdout, stderr, lines, wallMs: Math.round(performance.now() - started) };
}

function _killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

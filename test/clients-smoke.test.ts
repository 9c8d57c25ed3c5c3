/**
 * @module The client harness proven on the real CLIs: Claude Code and Codex, installed at their pinned versions,
 * each run one offline session against its scripted API and call a tool of a tiny MCP server. Claude Code's
 * SessionStart hooks and Codex's `notify` are checked too, since drover's integrations rest on both. A client
 * that cannot be installed fails these tests: nothing here is skipped.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anthropicSequence, startAnthropic } from "./clients/anthropic.ts";
import { ensureClient } from "./clients/install.ts";
import { type McpTestServer, startMcpServer } from "./clients/mcp.ts";
import { openaiSequence, startOpenAI } from "./clients/openai.ts";
import { runClaude, runCodex } from "./clients/run.ts";
import { until } from "./helpers.ts";

let mcp: McpTestServer;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  // a cold cache installs both (~10 s each, in parallel); a warm one answers at once
  await Promise.all([ensureClient("claude"), ensureClient("codex")]);
  mcp = startMcpServer([
    {
      name: "echo_ping",
      description: "Answers pong with the message",
      inputSchema: { type: "object", properties: { msg: { type: "string" } }, required: ["msg"] },
      annotations: { readOnlyHint: true },
      run: (args) => `pong:${args.msg}`,
    },
  ]);
  cleanups.push(() => mcp.stop());
}, 300_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("Claude Code", () => {
  test("calls an MCP tool from .mcp.json, runs SessionStart hooks and reads their context", async () => {
    const api = startAnthropic(
      anthropicSequence([{ type: "tool_use", name: "mcp__echo__echo_ping", input: { msg: "hello" } }], {
        type: "text",
        text: "Pinged.",
      }),
    );
    cleanups.push(() => api.stop());
    const { repo, logs } = _repo();
    const hookLog = join(logs, "session-start.jsonl");
    writeFileSync(join(repo, ".mcp.json"), JSON.stringify({ mcpServers: { echo: { type: "http", url: mcp.url } } }));
    const context = { hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: "MARKER-123" } };
    const hooks = [
      { type: "command", command: `cat >> '${hookLog}'; echo >> '${hookLog}'` },
      { type: "command", command: `echo '${JSON.stringify(context)}'` },
    ];
    writeFileSync(join(repo, ".claude", "settings.json"), JSON.stringify({ hooks: { SessionStart: [{ hooks }] } }));
    const before = mcp.calls.length;

    const run = await runClaude("Ping the echo server", { cwd: repo, apiUrl: api.url, timeoutMs: 45_000 });

    expect(run.exitCode, run.stderr).toBe(0);
    expect(mcp.calls.slice(before)).toEqual([expect.objectContaining({ name: "echo_ping", args: { msg: "hello" } })]);
    expect(run.result).toMatchObject({ type: "result", subtype: "success", is_error: false, result: "Pinged." });
    const [first, second] = api.turns();
    expect(first!.tools).toContain("mcp__echo__echo_ping");
    expect(second!.toolResults).toEqual([expect.objectContaining({ content: "pong:hello", isError: false })]);
    // the hook's context arrives in a mid-conversation system message, not in `system`
    expect(first!.text.includes("MARKER-123"), "SessionStart context in the model's input").toBe(true);
    const hookInput = JSON.parse(readFileSync(hookLog, "utf8").trim().split("\n")[0]!);
    expect(hookInput).toMatchObject({ hook_event_name: "SessionStart", cwd: repo, session_id: run.sessionId });
  }, 60_000);
});

describe("Codex", () => {
  test("calls an MCP tool from config.toml and runs notify after the turn", async () => {
    const api = startOpenAI(
      openaiSequence([{ type: "function_call", name: "mcp__echo__echo_ping", arguments: { msg: "hello" } }], {
        type: "text",
        text: "Pinged.",
      }),
    );
    cleanups.push(() => api.stop());
    const { repo, logs } = _repo();
    const notifyLog = join(logs, "notify.txt");
    const notify = ["sh", "-c", `printf '%s\\n' "$@" >> '${notifyLog}'`, "notify"];
    // JSON strings are TOML basic strings, so JSON.stringify writes TOML values
    const config = `notify = ${JSON.stringify(notify)}\n\n[mcp_servers.echo]\nurl = ${JSON.stringify(mcp.url)}\n`;
    const before = mcp.calls.length;

    // workspace-write, not the harness's default bypass: only under a sandbox does Codex exec check the tool's
    // annotations (an unannotated tool is refused there, and runs under the bypass)
    const options = { cwd: repo, apiUrl: api.url, config, sandbox: "workspace-write", timeoutMs: 45_000 } as const;
    const run = await runCodex("Ping the echo server", options);

    expect(run.exitCode, run.stderr).toBe(0);
    expect(mcp.calls.slice(before)).toEqual([expect.objectContaining({ name: "echo_ping", args: { msg: "hello" } })]);
    expect(run.lastMessage).toBe("Pinged.");
    const call = run.lines.find((l) => l.type === "item.completed" && l.item?.type === "mcp_tool_call");
    expect(call?.item).toMatchObject({ server: "echo", tool: "echo_ping", status: "completed" });
    const [first, second] = api.requests;
    expect(first!.tools).toContain("mcp__echo__echo_ping");
    expect(second!.toolResults[0]?.output).toContain("pong:hello");
    // Codex does not wait for notify: it may still be writing when exec exits
    let line: string | undefined;
    await until(() => (line = _lineWith(notifyLog, "agent-turn-complete")), 5_000, {
      message: () => `no line with "agent-turn-complete" in "${notifyLog}"`,
    });
    const notified = JSON.parse(line!);
    expect(notified).toMatchObject({ type: "agent-turn-complete", "thread-id": run.threadId, client: "codex_exec" });
  }, 60_000);
});

// --- internal ---

/** A git repository for the session and a folder beside it for what hooks write (outside the agent's tree). */
function _repo(): { repo: string; logs: string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "drover-clients-")));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const repo = join(root, "repo");
  const logs = join(root, "logs");
  mkdirSync(join(repo, ".claude"), { recursive: true });
  mkdirSync(logs);
  execFileSync("git", ["init", "-q", repo]);
  return { repo, logs };
}

/** The first line of `file` holding `needle`, if the file is there and has one. */
function _lineWith(file: string, needle: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, "utf8")
    .split("\n")
    .find((l) => l.includes(needle));
}

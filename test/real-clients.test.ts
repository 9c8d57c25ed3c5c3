/**
 * @module The real Claude Code and Codex CLIs, integrated as the README says (`drover integrate claude`,
 * `drover integrate codex --write`, with the compiled drover by its path), against drover's compiled daemon and a
 * scripted model on 127.0.0.1. The scripted model does what a model told its SessionStart context does: it reads
 * its agent id there and passes it to drover's tools. Each session must claim exactly one item, under the agent id
 * its hooks heartbeat as, hold nothing else, and never be given work after it ended or was killed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sessionKey } from "../cli/hook.ts";
import { type AnthropicScript, startAnthropic } from "./clients/anthropic.ts";
import { ensureClient } from "./clients/install.ts";
import { type OpenAIScript, startOpenAI } from "./clients/openai.ts";
import { prepareClaude, runClaude, runClaudeCommand, runCodex } from "./clients/run.ts";
import {
  api,
  BINARY,
  type DaemonProc,
  firstCommit,
  freePort,
  run,
  startDaemonProcess,
  tempProject,
  until,
} from "./helpers.ts";

/** What `drover integrate` sees: no `drover` on PATH, so hooks and notify name the compiled binary by its path. */
const NO_DROVER_ON_PATH = { PATH: "/usr/bin:/bin" };

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
let listeners = 0;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  await Promise.all([ensureClient("claude"), ensureClient("codex")]);
  project = await tempProject();
  cleanups.push(project.cleanup);
  // worktrees branch from the base: the project needs a first commit (the integration stays uncommitted)
  firstCommit(project.dir);
  const port = await freePort();
  await Bun.write(project.paths.config, `[hub]\nremote = ""\n[server]\nport = ${port}\n`);
  daemon = await startDaemonProcess([BINARY], project.paths, {}, port);
  cleanups.push(() => daemon.stop());
  const integrated = await run([BINARY, "integrate", "claude"], project.dir, NO_DROVER_ON_PATH);
  expect(integrated.code, integrated.stderr).toBe(0);
}, 300_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("Claude Code", () => {
  test("-p at the project's root: item_next claims one item under the hooks' agent; once ended it gets no work", async () => {
    await _createItems(2);
    const model = _scriptedModel();
    const api = startAnthropic(model.claude);
    cleanups.push(() => api.stop());

    const session = await runClaude("Work on your drover item", { cwd: project.dir, apiUrl: api.url, env: _env() });

    expect(session.exitCode, session.stderr).toBe(0);
    const agent = `claude-${sessionKey(session.sessionId!)}`;
    expect(model.agents).toEqual([agent]);
    const held = await _heldBy(agent);
    expect(held).toHaveLength(1);
    // what the model was told it claimed is what it holds
    expect(api.turns()[1]!.toolResults[0]).toMatchObject({
      isError: false,
      content: expect.stringContaining(held[0]!.id),
    });
    await _heartbeatsAs(agent, { state: "exiting" });
    await _neverAssigned(agent);
  }, 120_000);

  test("killed with SIGKILL mid-session: it keeps the item it claimed and is never given another", async () => {
    await _createItems(1);
    const model = _scriptedModel({ hangOnSecondTurn: true });
    const api = startAnthropic(model.claude);
    cleanups.push(() => api.stop());
    const { bin, env, home, args } = await prepareClaude({ apiUrl: api.url, env: _env() });
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const proc = Bun.spawn([bin, "-p", ...args, "--output-format", "stream-json", "--verbose", "Work on your item"], {
      cwd: project.dir,
      env,
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    });
    const stdout = new Response(proc.stdout).text();

    await model.hanging;
    process.kill(-proc.pid, "SIGKILL");
    await proc.exited;
    model.release();

    const sessionId = JSON.parse((await stdout).split("\n")[0]!).session_id;
    const agent = `claude-${sessionKey(sessionId)}`;
    expect(model.agents).toEqual([agent]);
    expect((await _heldBy(agent)).map((i) => i.id)).toHaveLength(1);
    await _heartbeatsAs(agent, { state: "working" });
    await _neverAssigned(agent);
  }, 120_000);

  test("in a worktree drover made: told its agent and item, the session is the item's holder", async () => {
    const { id, worktree } = await _startInWorktree("claude-wt");
    const model = _scriptedModel();
    const api = startAnthropic(model.claude);
    cleanups.push(() => api.stop());

    const session = await runClaude("Work on your drover item", { cwd: worktree, apiUrl: api.url, env: _env() });

    expect(session.exitCode, session.stderr).toBe(0);
    expect(model.agents).toEqual(["claude-wt"]);
    expect(model.items).toEqual([id]);
    expect(api.turns()[0]!.text).toMatch(new RegExp(`You work on item "${id}" .* with fence \\d+`));
    expect(api.turns()[1]!.toolResults[0]).toMatchObject({ isError: false });
    expect((await _heldBy("claude-wt")).map((i) => i.id)).toEqual([id]);
    await _heartbeatsAs("claude-wt", { state: "exiting", item: id });
    expect(await _agentIds()).not.toContain(`claude-${sessionKey(session.sessionId!)}`);
  }, 120_000);

  test("claude mcp list connects to drover and adds no agent", async () => {
    const api = startAnthropic(() => {
      throw new Error("mcp list asks no model");
    });
    cleanups.push(() => api.stop());
    const before = await _agentIds();
    const files = readdirSync(join(project.paths.hub, "heartbeats")).sort();

    // a folder the user trusted in Claude Code (its first interactive run asks): only then do the project's hooks
    // run in `mcp list`, and its health check runs SessionEnd
    const home = mkdtempSync(join(tmpdir(), "drover-claude-home-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    mkdirSync(join(home, ".claude"));
    const trusted = { projects: { [project.dir]: { hasTrustDialogAccepted: true } } };
    writeFileSync(join(home, ".claude", ".claude.json"), JSON.stringify(trusted));
    // a SessionEnd hook of the user's beside drover's: its marker says the probe's hooks did run
    const ended = join(home, "session-ended");
    const marker = { hooks: [{ type: "command", command: `touch '${ended}'` }] };

    const listed = await runClaudeCommand(["mcp", "list"], {
      cwd: project.dir,
      apiUrl: api.url,
      env: _env(),
      home,
      userSettings: { enableAllProjectMcpServers: true, hooks: { SessionEnd: [marker] } },
    });

    expect(listed.exitCode, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/drover: .*Connected/);
    await until(() => existsSync(ended), 10_000, { message: () => "the SessionEnd hooks of `mcp list` never ran" });
    expect(await _agentIds()).toEqual(before);
    expect(readdirSync(join(project.paths.hub, "heartbeats")).sort()).toEqual(files);
  }, 60_000);
});

describe("Codex", () => {
  let home: string;
  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "drover-codex-home-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    mkdirSync(join(home, ".codex"));
    const config = join(home, ".codex", "config.toml");
    const integrated = await run([BINARY, "integrate", "codex", "--write", config], project.dir, NO_DROVER_ON_PATH);
    expect(integrated.code, integrated.stderr).toBe(0);
  });

  /** `codex exec` under its workspace-write sandbox (where tool annotations decide approval), hooks trusted. */
  const exec = (cwd: string, apiUrl: string) =>
    runCodex("Work on your drover item", {
      cwd,
      apiUrl,
      home,
      env: _env(),
      sandbox: "workspace-write",
      args: ["--dangerously-bypass-hook-trust"],
    });

  test("exec at the project's root: item_next runs without approval and claims one item; once ended, no work", async () => {
    await _createItems(2);
    const model = _scriptedModel();
    const api = startOpenAI(model.codex);
    cleanups.push(() => api.stop());

    const session = await exec(project.dir, api.url);

    expect(session.exitCode, session.stderr).toBe(0);
    const call = session.lines.find((l) => l.type === "item.completed" && l.item?.type === "mcp_tool_call");
    expect(call?.item).toMatchObject({ server: "drover", tool: "item.next", status: "completed" });
    const agent = `codex-${sessionKey(session.threadId!)}`;
    expect(model.agents).toEqual([agent]);
    const held = await _heldBy(agent);
    expect(held).toHaveLength(1);
    expect(api.requests[1]!.toolResults[0]!.output).toContain(`"id":"${held[0]!.id}"`);
    // its notify, which Codex does not wait for, may come after its SessionEnd: the session ended all the same
    await _heartbeatsAs(agent, { state: "exiting" });
    await _neverAssigned(agent);
  }, 120_000);

  test("exec in a worktree drover made: the session is the item's holder", async () => {
    const { id, worktree } = await _startInWorktree("codex-wt");
    const model = _scriptedModel();
    const api = startOpenAI(model.codex);
    cleanups.push(() => api.stop());

    const session = await exec(worktree, api.url);

    expect(session.exitCode, session.stderr).toBe(0);
    expect(model.agents).toEqual(["codex-wt"]);
    expect(model.items).toEqual([id]);
    expect(api.requests[1]!.toolResults[0]!.output).toContain(`"agent_id":"codex-wt"`);
    expect((await _heldBy("codex-wt")).map((i) => i.id)).toEqual([id]);
    await _heartbeatsAs("codex-wt", { state: "exiting", item: id });
    expect(await _agentIds()).not.toContain(`codex-${sessionKey(session.threadId!)}`);
  }, 120_000);
});

// --- internal ---

function _env(): Record<string, string> {
  return { DROVER_TOKEN: daemon.token };
}

async function _createItems(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await api(daemon.url, daemon.token, "/api/items", { title: `task ${i} ${crypto.randomUUID()}` });
    expect(r.status).toBe(201);
    ids.push(r.body.id);
  }
  return ids;
}

/** A new item started for `agent` as the README says (`drover item start`): claimed, in coding, its worktree made. */
async function _startInWorktree(agent: string): Promise<{ id: string; worktree: string }> {
  const [id] = await _createItems(1);
  const started = await run([BINARY, "item", "start", "--id", id!, "--agent", agent, "--path-only"], project.dir);
  expect(started.code, started.stderr).toBe(0);
  return { id: id!, worktree: started.stdout.trim() };
}

async function _heldBy(agent: string): Promise<Array<{ id: string }>> {
  const r = await api(daemon.url, daemon.token, `/api/items?assignee=${agent}`);
  return r.body;
}

async function _agentIds(): Promise<string[]> {
  return (await api(daemon.url, daemon.token, "/api/agents")).body.map((a: { agent_id: string }) => a.agent_id).sort();
}

/** The daemon lists the agent as its hooks last described it (hooks write files; the watcher announces them). */
async function _heartbeatsAs(agent: string, expected: { state: string; item?: string }) {
  let row: Record<string, unknown> | undefined;
  await until(
    async () => {
      const rows = (await api(daemon.url, daemon.token, "/api/agents")).body as Array<Record<string, unknown>>;
      row = rows.find((a) => a.agent_id === agent);
      return row?.state === expected.state && (expected.item === undefined || row?.active_item_id === expected.item);
    },
    10_000,
    { message: () => `agent "${agent}" not listed as ${JSON.stringify(expected)}: ${JSON.stringify(row ?? null)}` },
  );
}

/**
 * New ready work goes to an agent that asks for it (the control: auto-assign is on and the item is ready), never
 * to the session's agent, also after a reconcile.
 */
async function _neverAssigned(agent: string) {
  const before = (await _heldBy(agent)).map((i) => i.id);
  await _createItems(1);
  expect((await api(daemon.url, daemon.token, "/api/reconcile", {})).status).toBe(200);
  expect((await _heldBy(agent)).map((i) => i.id)).toEqual(before);
  const listener = `listener-${++listeners}`;
  const beat = await api(daemon.url, daemon.token, `/api/agents/${listener}/heartbeat`, { accepts_work: true });
  expect(beat.status).toBe(200);
  await until(async () => (await _heldBy(listener)).length > 0, 5_000, {
    message: () => `no ready item was given to "${listener}", which asked for work`,
  });
  expect(await _heldBy(listener)).toHaveLength(1);
  expect((await _heldBy(agent)).map((i) => i.id)).toEqual(before);
}

/**
 * A model that does what its SessionStart context asks: it takes its agent id from there; holding an item (a
 * worktree's session) it renews that item, else it calls item_next; then it answers. `hangOnSecondTurn` keeps the
 * second request open (a session to kill mid-work) until `release()`.
 */
function _scriptedModel(options: { hangOnSecondTurn?: boolean } = {}) {
  const agents: string[] = [];
  const items: string[] = [];
  let reached: () => void = () => undefined;
  let release: () => void = () => undefined;
  const hanging = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const firstCall = (text: string) => {
    const agent = /you are agent "([^"]+)"/.exec(text)?.[1];
    if (!agent) throw new Error("The model's input names no drover agent (no SessionStart context)");
    agents.push(agent);
    const item = /You work on item "([^"]+)"/.exec(text)?.[1];
    if (item) items.push(item);
    return item
      ? { name: "mcp__drover__item_renew", args: { id: item, agent } }
      : { name: "mcp__drover__item_next", args: { agent } };
  };
  const later = async () => {
    if (!options.hangOnSecondTurn) return;
    reached();
    await released;
  };
  const claude: AnthropicScript = async (req) => {
    if (req.toolResults.length === 0) {
      const call = firstCall(req.text);
      return { type: "tool_use", name: call.name, input: call.args };
    }
    await later();
    return { type: "text", text: "Done." };
  };
  const codex: OpenAIScript = async (req) => {
    if (req.toolResults.length === 0) {
      const call = firstCall(req.text);
      return { type: "function_call", name: call.name, arguments: call.args };
    }
    await later();
    return { type: "text", text: "Done." };
  };
  return { agents, items, claude, codex, hanging, release };
}

/**
 * Runners of the `claude` and `codex` presets with the real CLIs (pinned, offline against scripted model APIs on
 * 127.0.0.1) under the compiled daemon: a ready item starts a run in its worktree; the model, told its agent id
 * by the prompt, calls drover's tools as the slot (`item_renew` succeeds only for the holder); the hooks speak for
 * the same slot; the usage the client reports lands on the item; and a rate-limit answer pauses the runner and
 * releases the item untouched. The runners' prompts start with the item's title, and the titles look like options:
 * the clients read them as the prompt all the same (it comes after `--`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_PROMPT } from "../features/runners/prompt.ts";
import { type AnthropicScript, startAnthropic } from "./clients/anthropic.ts";
import { ensureClient } from "./clients/install.ts";
import { type OpenAIScript, startOpenAI } from "./clients/openai.ts";
import { prepareClaude, prepareCodex } from "./clients/run.ts";
import { type RunnerOptions, runnerProject, runsOf } from "./fixtures/runner-project.ts";
import { api, BINARY, createItem, type DaemonProc, getItem, startDaemonProcess, until } from "./helpers.ts";

/** A prompt that starts with the title, and a title that looks like an option. */
const TITLE_FIRST = `{title}\n\n${DEFAULT_PROMPT}`;
const OPTION_LIKE = "--version Add a greeting";

const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  await Promise.all([ensureClient("claude"), ensureClient("codex")]);
}, 300_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("a claude runner", () => {
  test("takes a ready item: the model and the hooks are the slot; the session's usage lands on the item", async () => {
    const model = _model();
    const api_ = startAnthropic(model.claude);
    cleanups.push(() => api_.stop());
    const { d, paths } = await _project(await _claudeRunner(api_.url));
    const id = await createItem(d, OPTION_LIKE);

    const [run] = await runsOf(d, id, (r) => r[0]?.state === "ended", 60_000);

    expect(run).toMatchObject({ reason: "success", exit_code: 0 });
    expect(model.agents).toEqual([run.agent_id]);
    expect(run.cwd).toBe(join(paths.worktrees, id));
    expect(api_.turns()[1]!.toolResults[0]).toMatchObject({ isError: false });
    expect(existsSync(join(paths.dir, "hooks", `${run.agent_id}.json`))).toBe(true); // its hooks wrote for the slot
    expect((await _agents(d)).filter((a) => /^claude-[0-9a-f]{8}$/.test(a))).toEqual([]);
    const result = _lastLine(run.log, (l) => l.type === "result");
    const item = await getItem(d, id);
    expect(item).toMatchObject({ stage: "qa", claim: null });
    expect(item.usage).toMatchObject({
      input_tokens: result.usage.input_tokens + (result.usage.cache_creation_input_tokens ?? 0),
      output_tokens: result.usage.output_tokens,
      reports: 1,
    });
    expect(item.usage.output_tokens).toBeGreaterThan(0);
  }, 120_000);

  test("a rate-limit answer pauses the runner and releases the item untouched", async () => {
    const api_ = startAnthropic(() => ({
      type: "rate_limit",
      message: "Number of request tokens has exceeded your rate limit",
    }));
    cleanups.push(() => api_.stop());
    const { d } = await _project(await _claudeRunner(api_.url));
    const id = await createItem(d, "Add a farewell");

    const [run] = await runsOf(d, id, (r) => r[0]?.state === "ended", 60_000);

    expect(run).toMatchObject({ reason: "rate_limited", exit_code: 1 });
    await until(async () => (await getItem(d, id)).claim === null);
    expect((await getItem(d, id)).notes ?? []).toEqual([]);
    const paused = (await api(d.url, d.token, "/api/agents")).body.find((a: any) => a.agent_id === run.agent_id);
    expect(Date.parse(paused.paused_until)).toBeGreaterThan(Date.now() + 60_000); // no reset given: a backoff
  }, 120_000);
});

describe("a codex runner", () => {
  test("takes a ready item: the model and notify are the slot; the turn's usage lands on the item", async () => {
    const model = _model();
    const api_ = startOpenAI(model.codex);
    cleanups.push(() => api_.stop());
    const { d, paths } = await _project(await _codexRunner(api_.url));
    const id = await createItem(d, OPTION_LIKE);

    const [run] = await runsOf(d, id, (r) => r[0]?.state === "ended", 60_000);

    expect(run).toMatchObject({ reason: "success", exit_code: 0 });
    expect(model.agents).toEqual([run.agent_id]);
    expect(api_.requests[1]!.toolResults[0]!.output).toContain(`"agent_id":"${run.agent_id}"`);
    await until(async () => existsSync(join(paths.dir, "hooks", `${run.agent_id}.json`))); // notify, for the slot
    expect((await _agents(d)).filter((a) => /^codex-[0-9a-f]{8}$/.test(a))).toEqual([]);
    const turn = _lastLine(run.log, (l) => l.type === "turn.completed");
    const item = await getItem(d, id);
    expect(item).toMatchObject({ stage: "qa", claim: null });
    expect(item.usage).toMatchObject({
      input_tokens: turn.usage.input_tokens - turn.usage.cached_input_tokens,
      output_tokens: turn.usage.output_tokens,
      reports: 1,
    });
  }, 120_000);

  test("a usage limit pauses the runner until the reset Codex names, and releases the item untouched", async () => {
    const reset = Math.floor(Date.now() / 1000) + 3 * 3600;
    const api_ = startOpenAI(() => ({
      type: "error",
      status: 429,
      code: "usage_limit_reached",
      message: "The usage limit has been reached",
      fields: { plan_type: "pro", resets_at: reset },
    }));
    cleanups.push(() => api_.stop());
    const { d } = await _project(await _codexRunner(api_.url));
    const id = await createItem(d, "Add a farewell");

    const [run] = await runsOf(d, id, (r) => r[0]?.state === "ended", 60_000);

    expect(run).toMatchObject({ reason: "rate_limited", exit_code: 1 });
    await until(async () => (await getItem(d, id)).claim === null);
    const paused = (await api(d.url, d.token, "/api/agents")).body.find((a: any) => a.agent_id === run.agent_id);
    // Codex names the minute, not the second
    expect(Date.parse(paused.paused_until)).toBeGreaterThan(reset * 1000 - 60_000);
    expect(Date.parse(paused.paused_until)).toBeLessThanOrEqual(reset * 1000);
  }, 120_000);
});

// --- internal ---

/** A project with a first commit (worktrees branch from it), the runner in its trusted config, the compiled daemon. */
async function _project(
  runner: RunnerOptions,
): Promise<{ d: DaemonProc; paths: Awaited<ReturnType<typeof runnerProject>>["paths"] }> {
  const project = await runnerProject(runner);
  cleanups.push(project.cleanup);
  const d = await startDaemonProcess([BINARY], project.paths);
  cleanups.push(() => d.stop());
  return { d, paths: project.paths };
}

async function _claudeRunner(apiUrl: string): Promise<RunnerOptions> {
  const { bin, env, home, args } = await prepareClaude({ apiUrl });
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  const command = [bin, "-p", "{prompt}", "--output-format", "stream-json", "--verbose", ...args];
  return { name: "claude", command, max: 1, keys: { preset: "claude", prompt: TITLE_FIRST }, env: _clientEnv(env) };
}

async function _codexRunner(apiUrl: string): Promise<RunnerOptions> {
  const { bin, env, home } = await prepareCodex({ apiUrl });
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  const quiet = ["-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false"];
  const command = [bin, "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write", ...quiet, "{prompt}"];
  return { name: "codex", command, max: 1, keys: { preset: "codex", prompt: TITLE_FIRST }, env: _clientEnv(env) };
}

/** The client's private environment for the runner's `env` (PATH and such come from the daemon). */
function _clientEnv(env: Record<string, string>): Record<string, string> {
  const daemons = ["PATH", "LANG", "LC_ALL", "TMPDIR", "USER", "SHELL"];
  return Object.fromEntries(Object.entries(env).filter(([k]) => !daemons.includes(k)));
}

/** A model that does what drover's prompt says: it renews its item as the agent the prompt names, then answers. */
function _model() {
  const agents: string[] = [];
  const first = (text: string) => {
    const agent = /You are the drover agent "([^"]+)"/.exec(text)?.[1];
    const item = /You hold drover item "([^"]+)"/.exec(text)?.[1];
    if (!agent || !item) throw new Error("The prompt names no drover agent or item");
    agents.push(agent);
    return { agent, id: item };
  };
  const claude: AnthropicScript = (req) =>
    req.toolResults.length === 0
      ? { type: "tool_use", name: "mcp__drover__item_renew", input: first(req.text) }
      : { type: "text", text: "Done." };
  const codex: OpenAIScript = (req) =>
    req.toolResults.length === 0
      ? { type: "function_call", name: "mcp__drover__item_renew", arguments: first(req.text) }
      : { type: "text", text: "Done." };
  return { agents, claude, codex };
}

async function _agents(d: DaemonProc): Promise<string[]> {
  return (await api(d.url, d.token, "/api/agents")).body.map((a: any) => a.agent_id);
}

/** The last JSON line of a run's log that `pick` accepts. */
function _lastLine(log: string, pick: (l: any) => boolean): any {
  const lines = readFileSync(log, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
  return lines.findLast(pick);
}

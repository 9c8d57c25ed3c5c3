/**
 * @module The demo's scripted agent (`drover demo-agent`, hidden): what the demo's runners start on an item, as a
 * runner would start Claude Code. It reaches drover only as a run can — `DROVER_URL`, `DROVER_TOKEN`,
 * `DROVER_AGENT`, `DROVER_ITEM` — heartbeats while it "works" for a few seconds (progress on stdout, which the run's
 * log keeps), ends with a Claude-style `result` line carrying its usage, and exits 0: the runner moves a coded item
 * to qa; a reviewer moves its item to merge itself, over the HTTP API, and drover lands it on the base branch.
 * Coding commits in the run's folder (the item's worktree, on its own branch): a line in `work/<id>.md`, and for the
 * two `SHARED_EDITS` items the same line of `config.txt` — both start from the first commit, so whichever lands
 * second conflicts; its next run finds the conflict's note in its prompt, merges the base in keeping its own side,
 * and the item lands on the second try. The coding of `CRASHING_TITLE` crashes the first time (SIGKILL, as the
 * kernel's OOM killer would); the retry finds the crash's note in its prompt and succeeds.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { defineCommand } from "citty";

/** The item whose first run crashes. */
export const CRASHING_TITLE = "Fix the flaky test";
/** The demo repository's base branch: where drover lands the work. */
export const DEMO_BASE = "main";
/** The file two items edit on the same line, and the line each writes there (the demo's first items). */
export const SHARED_FILE = "config.txt";
export const SHARED_EDITS: Readonly<Record<string, string>> = {
  "Add a login page": "timeout_secs = 60",
  [CRASHING_TITLE]: "timeout_secs = 120",
};
/** `SHARED_FILE` in the first commit. */
export const SHARED_START = "# the demo app's settings\nport = 8080\ntimeout_secs = 30\nlog_level = info\n";

export const demoAgent = defineCommand({
  meta: { name: "demo-agent", description: "A scripted agent for the demo's runners", hidden: true },
  args: {
    title: { type: "string", required: true, description: "The item's title" },
    stage: { type: "string", required: true, description: "The item's stage (coding: write it; qa: review it)" },
    prompt: { type: "string", description: "The run's prompt (it carries the notes of earlier runs)" },
    speed: { type: "string", description: "Work this many times faster (tests)" },
  },
  async run({ args }) {
    const speed = Math.max(0.01, Number(args.speed ?? 1) || 1);
    const pause = (ms: number) => Bun.sleep((ms * (0.7 + Math.random() * 0.6)) / speed);
    const beat = (body: Record<string, unknown>) => _beat(body).catch(() => undefined);
    process.once("SIGTERM", () => {
      console.log("asked to stop (SIGTERM): stopping");
      process.exit(143);
    });
    const beating = setInterval(() => void beat({ item: _env("DROVER_ITEM"), state: "working" }), 2000 / speed);
    await beat({ item: _env("DROVER_ITEM"), state: "working" });

    const crashedBefore = (args.prompt ?? "").includes("crashed (signal");
    if (args.stage === "qa") {
      console.log(`reviewing "${args.title}"`);
      await pause(1500);
      console.log(`reading the diff (${20 + Math.floor(Math.random() * 200)} lines)`);
      await pause(1500);
      console.log("running the checks: all green");
      await pause(1000);
      // a reviewer moves its item itself (the runner would move it to on_success otherwise)
      console.log(`approved: moving it to merge (${await _move("merge")})`);
    } else {
      console.log(`working on "${args.title}"`);
      const conflict = /Merge into the base failed: conflicts in ([^\n]*?)\. Merge/.exec(args.prompt ?? "")?.[1];
      if (conflict) {
        console.log(`the notes say landing it conflicted in ${conflict}: merging ${DEMO_BASE} into this branch`);
        await pause(2000);
        _git(["merge", "--no-edit", "-X", "ours", "-m", `Merge ${DEMO_BASE}, keeping this item's side`, DEMO_BASE]);
        console.log(`merged ${DEMO_BASE}; the conflicting lines keep this item's side`);
      } else {
        if (crashedBefore) console.log("the notes say an earlier run crashed: running the slow tests one at a time");
        await pause(2000);
        console.log(`editing ${1 + Math.floor(Math.random() * 6)} files`);
        await pause(3000);
      }
      console.log("running the tests");
      await pause(2000);
      if (args.title === CRASHING_TITLE && !crashedBefore) {
        console.log("test/flaky.test.ts: retrying for the 40th time");
        console.error("fatal: out of memory (4.0 GB) while running test/flaky.test.ts");
        process.kill(process.pid, "SIGKILL");
        await new Promise(() => undefined);
      }
      if (!conflict) _commit(args.title);
      console.log("12 of 12 tests pass; committed");
    }
    clearInterval(beating);
    console.log(JSON.stringify(_result(args.stage === "qa" ? 0.3 : 1)));
    await beat({ state: "idle" }); // done with it: the dashboard shows the slot free
    process.exit(0);
  },
});

// --- internal ---

/** The run's work, committed on the item's branch (the run's folder is its worktree). */
function _commit(title: string): void {
  const file = `work/${_env("DROVER_ITEM")}.md`;
  mkdirSync("work", { recursive: true });
  const line = `- ${new Date().toISOString()} ${_env("DROVER_AGENT")}: worked on it\n`;
  appendFileSync(file, existsSync(file) ? line : `# ${title}\n\n${line}`);
  const files = [file];
  const shared = SHARED_EDITS[title];
  if (shared) {
    const text = existsSync(SHARED_FILE) ? readFileSync(SHARED_FILE, "utf8") : SHARED_START;
    writeFileSync(SHARED_FILE, text.replace(/^timeout_secs = .*$/m, shared));
    files.push(SHARED_FILE);
  }
  _git(["add", "--", ...files]);
  _git(["commit", "-q", "-m", title]);
}

/** Git in the run's folder as this agent (the demo repository has no identity of its own); throws on failure. */
function _git(args: string[]): void {
  const agent = _env("DROVER_AGENT");
  const who = ["-c", `user.name=${agent}`, "-c", `user.email=${agent}@drover.invalid`, "-c", "commit.gpgsign=false"];
  const r = Bun.spawnSync(["git", ...who, ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`git ${args[0]} failed: ${r.stderr.toString().trim() || r.stdout.toString()}`);
}

function _env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: "drover demo-agent" is started by the demo's runners`);
  return value;
}

function _beat(body: Record<string, unknown>): Promise<Response> {
  return _post(`/api/agents/${_env("DROVER_AGENT")}/heartbeat`, body);
}

async function _move(to: string): Promise<number> {
  const body = { to, agent: _env("DROVER_AGENT"), fence: Number(_env("DROVER_FENCE")) };
  return (await _post(`/api/items/${_env("DROVER_ITEM")}/move`, body)).status;
}

function _post(path: string, body: unknown): Promise<Response> {
  return fetch(_env("DROVER_URL") + path, {
    method: "POST",
    headers: { authorization: `Bearer ${_env("DROVER_TOKEN")}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The `result` line Claude Code's stream-json ends with: the runner reads the usage from it. */
function _result(scale: number): Record<string, unknown> {
  const n = (low: number, high: number) => Math.round((low + Math.random() * (high - low)) * scale);
  const usage = {
    input_tokens: n(2_000, 12_000),
    output_tokens: n(300, 2_500),
    cache_read_input_tokens: n(5_000, 40_000),
  };
  const cost = (usage.input_tokens * 3 + usage.output_tokens * 15 + usage.cache_read_input_tokens * 0.3) / 1e6;
  return {
    type: "result",
    subtype: "success",
    is_error: false,
    result: "Done.",
    usage,
    total_cost_usd: Math.round(cost * 10_000) / 10_000,
    modelUsage: { "demo-model": {} },
  };
}

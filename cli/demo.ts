/**
 * @module `drover demo` (what `npm start` runs): a throwaway project in a temp folder and a daemon whose runners
 * (SPEC §13) start the agents — `drover demo-agent`, a scripted agent, run with the `command` preset: `coder` takes
 * backlog items into coding, commits in the item's worktree and hands it to qa, `reviewer` takes qa to merge, where
 * drover lands the branch on `main` (SPEC §14), and a timer adds work. Each run heartbeats over the HTTP API,
 * reports its usage and exits; one crashes once, so the supervisor's note and retry show, and two edit the same line,
 * so one merge conflicts, goes back to coding and lands on the second try. The terminal prints each run's start and
 * end and each merge. Ctrl-C stops the daemon, which stops its runs, and removes the folder.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { selfArgv, shellLine } from "../clients/self.ts";
import type { BusEvent } from "../core/events.ts";
import { type Paths, pathsFor } from "../core/paths.ts";
import { approve } from "../core/trust.ts";
import { openRuntime, VERSION } from "../runtime.ts";
import type { Daemon } from "./daemon.ts";
import { CRASHING_TITLE, DEMO_BASE, SHARED_EDITS, SHARED_FILE, SHARED_START } from "./demo-agent.ts";
import { initProject } from "./init.ts";

export { demoAgent } from "./demo-agent.ts";

const WORK = [
  ["Write the README", ["docs"], 1],
  ["Add a login page", ["ui", "auth"], 0],
  [CRASHING_TITLE, ["ci"], 0],
  ["Cache the API responses", ["api"], 2],
  ["Dark mode", ["ui"], 3],
  ["Rate-limit the webhooks", ["api"], 1],
  ["Upgrade the database driver", ["deps"], 2],
  ["Profile the start-up", ["perf"], 2],
] as const;

export const demo = defineCommand({
  meta: { name: "demo", description: "Agents at work on a throwaway project in a temp folder (what npm start does)" },
  args: {
    port: { type: "string", description: "Port (default: any free one)" },
    speed: { type: "string", description: "The agents work this many times faster (default 1)" },
  },
  async run({ args }) {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-demo-")));
    _repo(dir);
    await initProject(dir, { local: true });
    const paths = pathsFor(dir);
    // by path, never a `drover` on PATH: the runners must start this drover, which has `demo-agent`
    const self = selfArgv({ path: "" });
    writeFileSync(paths.config, _config([...self, "demo-agent", ...(args.speed ? [`--speed=${args.speed}`] : [])]));
    await _prepare(paths); // before the daemon: its runners start on the best items first
    const { serveDaemon } = await import("./daemon.ts");
    const daemon = await serveDaemon(paths, {
      port: args.port ? Number(args.port) : 0,
      after: () => rmSync(dir, { recursive: true, force: true }),
    });
    _printRuns(daemon);
    _printMerges(daemon);
    const other = Object.keys(SHARED_EDITS).find((t) => t !== CRASHING_TITLE); // the other item editing SHARED_FILE
    console.log(
      [
        `drover ${VERSION} demo: runners at work on ${dir}`,
        `  dashboard: ${daemon.server.url}/#token=${daemon.token}`,
        `  URL:       ${daemon.server.url}`,
        `  token:     ${daemon.token}`,
        "  runners:   coder (2 at a time: backlog → coding → qa), reviewer (1: qa → merge); drover merges each",
        `             item's branch into ${DEMO_BASE}; a timer adds work every 20 s`,
        `  agents:    each run is "drover demo-agent", a scripted agent: a few seconds of work, a commit in the`,
        `             item's worktree, heartbeats, its usage; "${CRASHING_TITLE}" crashes on its first run, and is`,
        `             retried; it and "${other}" change one line of ${SHARED_FILE}: the one to land second`,
        "             conflicts, goes back to coding, and lands on the second try",
        `  try:       cd ${dir} && ${shellLine([...self, "runs"])}`,
        `             (then: run log <run> --follow)`,
        "Ctrl-C stops everything and removes the folder.",
      ].join("\n"),
    );
    await new Promise(() => undefined);
  },
});

// --- internal ---

/** The demo's config: two runners starting `agent` with the item's fields; slots show idle soon after a run. */
function _config(agent: string[]): string {
  const command = JSON.stringify([...agent, "--title={title}", "--stage={stage}", "--prompt={prompt}"]);
  return [
    "[hub]",
    'remote = ""',
    "[heartbeats]",
    "idle_after_secs = 15",
    "stale_after_secs = 120",
    "[pipeline]",
    "auto_assign = true",
    "[merge]",
    'mode = "auto"',
    'strategy = "merge"',
    "[runners.coder]",
    'preset = "command"',
    `command = ${command}`,
    "max = 2",
    'stages = ["coding"]',
    'on_success = "qa"',
    "max_attempts = 3",
    "[runners.reviewer]",
    'preset = "command"',
    `command = ${command}`,
    "max = 1",
    'stages = ["qa"]',
    'on_success = "merge"',
    "",
  ].join("\n");
}

/**
 * The demo wrote this config itself: its runners are approved as `drover trust --yes` does. The work and the timer
 * are there before the daemon starts, as in a project that has been in use.
 */
async function _prepare(paths: Paths): Promise<void> {
  const rt = await openRuntime({ paths, mode: "cli" });
  try {
    approve(rt.ctx.db, rt.ctx.untrusted, rt.ctx.clock);
    const run = (name: string, input: unknown) => rt.ops.run(name, input, { via: "internal" });
    for (const [title, labels, priority] of WORK) await run("item.create", { title, labels: [...labels], priority });
    await run("timer.add", { label: "new work", every: "20s", prompt: "Triage what came in" });
  } finally {
    await rt.close();
  }
}

/**
 * One line per run started and ended; a failure also shows the note its item got. The daemon's first fill may
 * start runs before this subscribes: those already running are printed once, after the header.
 */
function _printRuns(daemon: Daemon): void {
  const op = (name: string, input: unknown) => daemon.rt.ops.run(name, input, { via: "internal" });
  const item = (id: string) => op("item.get", { id }).catch(() => null) as Promise<_Item | null>;
  const seen = new Set<string>();
  const started = async (e: { run: string; agent_id: string; item_id: string; pid: number | null }) => {
    if (seen.has(e.run)) return;
    seen.add(e.run);
    const it = await item(e.item_id);
    _say(e.agent_id, `started  "${it?.title ?? e.item_id}" (${it?.stage}): ${e.run}, pid ${e.pid}`);
  };
  const { bus } = daemon.rt.ctx;
  bus.on("run_started", (e) => started(e as BusEvent<"run_started">), { name: "demo-runs-started" });
  bus.on(
    "run_ended",
    async (event) => {
      const e = event as BusEvent<"run_ended">;
      const it = await item(e.item_id);
      const title = `"${it?.title ?? e.item_id}"`;
      if (e.reason === "success" || e.reason === "moved") {
        const tokens = e.usage ? `, ${e.usage.input_tokens + e.usage.output_tokens} tokens, $${e.usage.cost_usd}` : "";
        const how = e.reason === "success" ? "" : ", moved it itself";
        return _say(e.agent_id, `finished ${title}${how} → ${it?.stage}${tokens}`);
      }
      if (e.reason === "stopped") return _say(e.agent_id, `stopped  ${title}`);
      const next = it?.stage === "blocked" ? "blocked" : "released, to be retried";
      _say(e.agent_id, `${e.reason.padEnd(8)} ${title}: ${next}, with a note:`);
      const note = (it?.notes?.at(-1)?.text ?? "").trim().split("\n");
      for (const line of [note[0], ...note.slice(1).slice(-2)]) if (line) console.log(`            | ${line}`);
    },
    { name: "demo-runs-ended" },
  );
  void (async () => {
    const running = (await op("runs.list", { state: "running" }).catch(() => [])) as Parameters<typeof started>[0][];
    for (const r of running.reverse()) await started(r);
  })();
}

/** One line per merge: landed (the commit), conflicted (the files), check failed, or waiting (why). */
function _printMerges(daemon: Daemon): void {
  const { bus } = daemon.rt.ctx;
  const title = async (id: string) => {
    const it = (await daemon.rt.ops.run("item.get", { id }, { via: "internal" }).catch(() => null)) as _Item | null;
    return `"${it?.title ?? id}"`;
  };
  const say = (what: string) => _say("drover merge", what);
  bus.on(
    "merged",
    async (event) => {
      const e = event as BusEvent<"merged">;
      say(`landed   ${await title(e.item_id)} on ${e.base}: ${e.sha.slice(0, 7)} (${e.strategy}) → done`);
    },
    { name: "demo-merged" },
  );
  bus.on(
    "merge_failed",
    async (event) => {
      const e = event as BusEvent<"merge_failed">;
      const next = e.blocked ? "blocked" : "back to coding, with a note";
      if (e.kind === "conflict") say(`conflict ${await title(e.item_id)} in ${(e.files ?? []).join(", ")}: ${next}`);
      else say(`failed   ${await title(e.item_id)}: the check exited ${e.exit_code ?? "(stopped)"}: ${next}`);
    },
    { name: "demo-merge-failed" },
  );
  bus.on(
    "merge_waiting",
    async (event) => {
      const e = event as BusEvent<"merge_waiting">;
      say(`waiting  ${await title(e.item_id)}: ${e.reason}`);
    },
    { name: "demo-merge-waiting" },
  );
}

/**
 * The throwaway repository: `main` with a first commit (runs work in worktrees, which branch from it), and no
 * commit signing whatever the user's global git config says (each agent commits as itself).
 */
function _repo(dir: string): void {
  const git = (...args: string[]) => execFileSync("git", ["-C", dir, ...args], { stdio: "pipe" });
  git("init", "-q");
  git("symbolic-ref", "HEAD", `refs/heads/${DEMO_BASE}`);
  git("config", "commit.gpgsign", "false");
  writeFileSync(join(dir, "README.md"), "# The demo app\n\nA throwaway project: drover's demo agents commit here.\n");
  writeFileSync(join(dir, SHARED_FILE), SHARED_START);
  git("add", "README.md", SHARED_FILE);
  git("-c", "user.name=drover demo", "-c", "user.email=demo@drover.invalid", "commit", "-q", "-m", "A first commit");
}

/** A line of the demo's log: the time, who, what. */
function _say(who: string, what: string): void {
  console.log(`${new Date().toTimeString().slice(0, 8)}  ${who.padEnd(20)} ${what}`);
}

type _Item = { title: string; stage: string; notes?: Array<{ text: string }> };

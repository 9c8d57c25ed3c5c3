/**
 * @module `drover demo` (what `npm start` runs): a throwaway project in a temp folder, a daemon, and three
 * scripted agents — separate processes talking to the real HTTP API — that heartbeat, take items with
 * `item.next` and move them through the stages. One goes quiet, so the watchdog shows its work; a timer adds
 * work and a trigger auto-merges. Ctrl-C stops every process it started and removes the folder.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { pathsFor } from "../core/paths.ts";
import { VERSION } from "../runtime.ts";
import { initProject } from "./init.ts";

/** Short thresholds so a visitor sees idle, stale and a takeover within a minute. */
const DEMO_CONFIG = `[hub]\nremote = ""\n[heartbeats]\nidle_after_secs = 12\nstale_after_secs = 25\ntakeover_grace_secs = 8\npoll_secs = 5\n[pipeline]\nauto_assign = true\nworktrees = false\n`;

const AGENTS = [
  { name: "ada", quietAfterSecs: 0 },
  { name: "grace", quietAfterSecs: 0 },
  { name: "linus", quietAfterSecs: 20 },
];

const WORK = [
  ["Write the README", ["docs"], 1],
  ["Add a login page", ["ui", "auth"], 0],
  ["Fix the flaky test", ["ci"], 0],
  ["Cache the API responses", ["api"], 2],
  ["Dark mode", ["ui"], 3],
  ["Rate-limit the webhooks", ["api"], 1],
  ["Upgrade the database driver", ["deps"], 2],
  ["Profile the start-up", ["perf"], 2],
] as const;

export const demo = defineCommand({
  meta: { name: "demo", description: "Agents at work on a throwaway project in a temp folder (what npm start does)" },
  args: { port: { type: "string", description: "Port (default: any free one)" } },
  async run({ args }) {
    const dir = mkdtempSync(join(tmpdir(), "drover-demo-"));
    execFileSync("git", ["init", "-q", dir]);
    await initProject(dir, { local: true });
    const paths = pathsFor(dir);
    writeFileSync(paths.config, DEMO_CONFIG);
    const { startDaemon, stopOnSignals } = await import("./daemon.ts");
    const daemon = await startDaemon(paths, { port: args.port ? Number(args.port) : 0 });
    const run = (name: string, input: unknown) => daemon.rt.ops.run(name, input, { via: "internal" });
    for (const [title, labels, priority] of WORK) await run("item.create", { title, labels: [...labels], priority });
    await run("timer.add", { label: "new work", every: "20s", prompt: "Triage what came in" });
    await run("trigger.add", {
      label: "auto-merge",
      on: { to: "merge" },
      mode: "persistent",
      op: "item.move",
      args: { id: "$event.item_id", to: "done", reason: "auto-merge" },
    });

    const env = { ...process.env, DROVER_DEMO_URL: daemon.server.url, DROVER_DEMO_TOKEN: daemon.token };
    const agents = AGENTS.map((a) =>
      Bun.spawn([...selfCommand(), "demo-agent", "--agent", a.name, "--quiet-after", String(a.quietAfterSecs)], {
        env,
        stdout: "ignore",
        stderr: "ignore",
      }),
    );
    stopOnSignals(daemon, {
      async before() {
        for (const a of agents) a.kill("SIGTERM");
        await Promise.all(agents.map((a) => a.exited));
      },
      after: () => rmSync(dir, { recursive: true, force: true }),
    });
    console.log(
      [
        `drover ${VERSION} demo: three agents at work on ${dir}`,
        `  dashboard: ${daemon.server.url}/#token=${daemon.token}`,
        `  URL:       ${daemon.server.url}`,
        `  token:     ${daemon.token}`,
        `  agents:    ${AGENTS.map((a, i) => `${a.name} (pid ${agents[i]!.pid})`).join(", ")}; linus goes quiet after ${AGENTS[2]!.quietAfterSecs} s`,
        `  try:       cd ${dir} && ${selfCommand().join(" ")} items list`,
        "Ctrl-C stops everything and removes the folder.",
      ].join("\n"),
    );
    await new Promise(() => undefined);
  },
});

/** One scripted agent (hidden command): heartbeats, takes work, moves it along, maybe falls silent. */
export const demoAgent = defineCommand({
  meta: { name: "demo-agent", description: "A scripted agent for the demo", hidden: true },
  args: {
    agent: { type: "string", required: true, description: "Agent id" },
    "quiet-after": { type: "string", description: "Stop heartbeating after this many seconds (0: never)" },
  },
  async run({ args }) {
    const url = process.env.DROVER_DEMO_URL!;
    const headers = { authorization: `Bearer ${process.env.DROVER_DEMO_TOKEN}`, "content-type": "application/json" };
    const call = (path: string, body: unknown) =>
      fetch(url + path, { method: "POST", headers, body: JSON.stringify(body) }).then((r) => r.json() as Promise<any>);
    const quietAt = Number(args["quiet-after"] ?? 0) ? Date.now() + Number(args["quiet-after"]) * 1000 : Infinity;
    process.once("SIGTERM", () => process.exit(0));
    let held: { id: string; fence: number; stage: string } | null = null;
    for (;;) {
      await Bun.sleep(1500 + Math.random() * 2500);
      if (Date.now() > quietAt) continue; // silent from now on: the watchdog will notice
      // a scripted agent listens for its work (it lists what it holds): auto-assign may give it items
      await call(
        `/api/agents/${args.agent}/heartbeat`,
        held ? { item: held.id, accepts_work: true } : { accepts_work: true },
      );
      if (!held) {
        const assigned = ((await call("/api/ops/items.list", { assignee: args.agent })) as any[]).find((i) =>
          ["coding", "qa"].includes(i.stage),
        );
        const next = assigned
          ? { item: assigned, fence: assigned.fence }
          : await call("/api/next", { agent: args.agent });
        if (next.item) held = { id: next.item.id, fence: next.fence, stage: next.item.stage };
        continue;
      }
      if (Math.random() < 0.5) continue; // still working on it
      const to = held.stage === "coding" ? "qa" : "merge";
      const moved = await call(`/api/items/${held.id}/move`, { to, agent: args.agent, fence: held.fence });
      if (moved.error || to === "merge") held = null;
      else held.stage = to;
    }
  },
});

/** How to start this drover again: the binary itself, or bun with this source. */
function selfCommand(): string[] {
  return Bun.isStandaloneExecutable ? [process.execPath] : [process.execPath, join(import.meta.dir, "..", "cli.ts")];
}

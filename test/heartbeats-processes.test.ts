/** Heartbeats with the compiled daemon: whoever writes the file, the same events reach a WebSocket client. */
import { afterEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { api, BINARY, type DaemonProc, run, startDaemonProcess, tempProject, wsClient } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;

afterEach(async () => {
  await daemon.stop();
  project.cleanup();
});

async function setup(config: string, env: Record<string, string> = {}) {
  project = await tempProject({ config });
  daemon = await startDaemonProcess([BINARY], project.paths, env);
  return wsClient(daemon.url, daemon.token);
}

function handWritten(agent: string) {
  const hb = {
    agent_id: agent,
    machine_id: "elsewhere",
    last_heartbeat: new Date().toISOString(),
    active_item_id: null,
    state: "working",
  };
  writeFileSync(join(project.paths.hub, "heartbeats", `${agent}.json.tmp`), JSON.stringify(hb));
  Bun.spawnSync([
    "mv",
    join(project.paths.hub, "heartbeats", `${agent}.json.tmp`),
    join(project.paths.hub, "heartbeats", `${agent}.json`),
  ]);
}

describe("heartbeats with the compiled daemon", () => {
  test("`drover heartbeat` from another process: heartbeat, then agent_status active", async () => {
    const client = await setup('[hub]\nremote = ""\n');
    const started = performance.now();
    const cli = await run([BINARY, "heartbeat", "--agent", "a1", "--state", "working"], project.dir);
    expect(cli.code).toBe(0);
    const beat = await client.waitFor((f) => f.type === "heartbeat" && f.agent_id === "a1");
    const status = await client.waitFor((f) => f.type === "agent_status" && f.agent_id === "a1");
    console.log(`cli heartbeat → ws event: ${Math.round(performance.now() - started)} ms including the CLI process`);
    expect(beat).toMatchObject({ state: "working", origin: "local", clock_skew: false });
    expect(status).toMatchObject({ status: "active", previous: null });
    expect((status.seq as number) > (beat.seq as number)).toBe(true);
    const agents = await run([BINARY, "agents"], project.dir);
    expect(agents.stdout).toMatch(/^AGENT_ID\s+STATUS\s+AGE_SECS/);
    expect(agents.stdout).toMatch(/\na1\s+active\s+\d+\s+working/);
    client.close();
  });

  test("a file written by hand (no drover involved) gives the same events", async () => {
    const client = await setup('[hub]\nremote = ""\n');
    handWritten("by-hand");
    const beat = await client.waitFor((f) => f.type === "heartbeat" && f.agent_id === "by-hand");
    expect(beat).toMatchObject({ machine_id: "elsewhere", origin: "remote", state: "working" });
    await client.waitFor((f) => f.type === "agent_status" && f.agent_id === "by-hand");
    client.close();
  });

  test("with the watcher off, the poll fallback alone finds it", async () => {
    const client = await setup('[hub]\nremote = ""\n[heartbeats]\npoll_secs = 1\n', { DROVER_WATCHER: "off" });
    handWritten("polled");
    const beat = await client.waitFor((f) => f.type === "heartbeat" && f.agent_id === "polled", 4000);
    expect(beat.agent_id).toBe("polled");
    client.close();
  });

  test("a flood of 10,000 heartbeats from 50 agents: in order per agent, bounded memory, a few commits", async () => {
    const client = await setup('[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n');
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))![1]) / 1024;
    const commits = () =>
      Number(execFileSync("git", ["rev-list", "--count", "drover/hub"], { cwd: project.paths.hub, encoding: "utf8" }));
    const before = { rss: rss(), commits: commits() };
    const started = performance.now();
    const final = new Map<string, string>();
    await Promise.all(
      Array.from({ length: 50 }, async (_, a) => {
        for (let i = 0; i < 200; i++) {
          const res = await api(daemon.url, daemon.token, `/api/agents/agent-${a}/heartbeat`, {});
          expect(res.status).toBe(200);
          final.set(`agent-${a}`, res.body.last_heartbeat);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // two beats of one agent in the same millisecond write the same file: one event; every last one arrives
    await client.waitFor(
      () =>
        [...final].every(([agent, at]) =>
          client.frames.some((f) => f.type === "heartbeat" && f.agent_id === agent && f.last_heartbeat === at),
        ),
      20_000,
    );
    const last = new Map<string, string>();
    for (const f of client.frames.filter((f) => f.type === "heartbeat")) {
      const agent = f.agent_id as string;
      expect((f.last_heartbeat as string) >= (last.get(agent) ?? "")).toBe(true);
      last.set(agent, f.last_heartbeat as string);
    }
    expect(last.size).toBe(50);
    expect(client.frames.filter((f) => f.type === "gap")).toEqual([]);
    await Bun.sleep(1500); // a round to commit
    const after = { rss: rss(), commits: commits() };
    console.log(
      `flood: ${Math.round(10_000 / seconds)} heartbeats/s over HTTP (${seconds.toFixed(1)} s), ${client.frames.filter((f) => f.type === "heartbeat").length} events; rss ${Math.round(before.rss)} → ${Math.round(after.rss)} MB; ${after.commits - before.commits} commits`,
    );
    expect(after.rss - before.rss).toBeLessThan(100);
    expect(after.commits - before.commits).toBeLessThanOrEqual(Math.ceil(seconds / 10) + 2);
    client.close();
  }, 60_000);
});

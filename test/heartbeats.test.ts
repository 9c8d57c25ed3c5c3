import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { iso, type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import { parseHeartbeat, statusAt } from "../features/heartbeats/file.ts";
import type { AgentRow } from "../features/heartbeats/ops.ts";
import type { Item } from "../features/pipeline/item.ts";
import type { Runtime } from "../runtime.ts";
import { tempProject, testRuntime } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;
let logLines: string[];

beforeEach(async () => {
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  clock = manualClock("2026-06-01T12:00:00Z");
  logLines = [];
  ({ rt, events } = await testRuntime(project.paths, { clock, logLines }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = unknown>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
const since = async (n: number) => {
  await rt.ctx.bus.idle();
  return events.slice(n).filter((e) => e.type !== "reconciled");
};
/** Advances the clock one second at a time, ticking like the daemon, and returns the events of each second. */
async function tickFor(seconds: number): Promise<Array<{ at: number; type: string; status?: string }>> {
  const out: Array<{ at: number; type: string; status?: string }> = [];
  for (let i = 0; i < seconds; i++) {
    clock.advance(1000);
    const n = events.length;
    await rt.tick();
    for (const e of await since(n))
      out.push({ at: clock.now(), type: e.type, status: (e as BusEvent<"agent_status">).status });
  }
  return out;
}

describe("status", () => {
  test("a boundary belongs to the older class", () => {
    const t = { idleAfterMs: 300_000, staleAfterMs: 1_800_000 };
    expect(statusAt(0, 299_999, t)).toBe("active");
    expect(statusAt(0, 300_000, t)).toBe("idle");
    expect(statusAt(0, 1_799_999, t)).toBe("idle");
    expect(statusAt(0, 1_800_000, t)).toBe("stale");
  });

  test("active → idle → stale are published once each, at the right second, with nothing in between", async () => {
    await op("heartbeat", { agent: "a1" });
    expect((await since(0)).map((e) => e.type)).toEqual(["heartbeat", "agent_status"]);
    const start = clock.now();
    const seen = await tickFor(1800);
    expect(seen).toEqual([
      { at: start + 300_000, type: "agent_status", status: "idle" },
      { at: start + 1_800_000, type: "agent_status", status: "stale" },
    ]);
    expect((await op<AgentRow[]>("agents.list", {}))[0]!).toMatchObject({
      agent_id: "a1",
      status: "stale",
      age_secs: 1800,
    });
  });

  test("a heartbeat more than 60 s in the future is flagged clock_skew", async () => {
    const future = new Date(clock.now() + 120_000).toISOString();
    writeFileSync(
      join(project.paths.hub, "heartbeats", "skewed.json"),
      JSON.stringify({
        agent_id: "skewed",
        machine_id: "m",
        last_heartbeat: future,
        active_item_id: null,
        state: "idle",
      }),
    );
    await rt.reconcile();
    expect((await since(0)).find((e) => e.type === "heartbeat")).toMatchObject({
      agent_id: "skewed",
      clock_skew: true,
      origin: "remote",
    });
    expect((await op<AgentRow[]>("agents.list", {}))[0]).toMatchObject({
      agent_id: "skewed",
      clock_skew: true,
      status: "active",
    });
  });
});

describe("watchdog", () => {
  async function staleHolder() {
    const item = await op<Item>("item.create", { title: "x" });
    await op("item.claim", { id: item.id, agent: "a1", ttl_secs: 7 * 86_400 });
    await op("heartbeat", { agent: "a1", item: item.id });
    await tickFor(1800);
    return item;
  }

  test("a stale agent's claims are released only after the grace, with reason stale", async () => {
    const item = await staleHolder();
    expect((await op<Item>("item.get", { id: item.id })).claim?.agent_id).toBe("a1");
    const n = events.length;
    const seen = await tickFor(60);
    expect(seen.filter((e) => e.type === "claim_released")).toEqual([
      { at: clock.now(), type: "claim_released", status: undefined },
    ]);
    expect((await since(n)).find((e) => e.type === "claim_released")).toMatchObject({
      item_id: item.id,
      agent_id: "a1",
      reason: "stale",
    });
    expect((await op<Item>("item.get", { id: item.id })).claim).toBeNull();
    expect(await tickFor(120)).toEqual([]); // once
  });

  test("a heartbeat during the grace cancels the takeover", async () => {
    const item = await staleHolder();
    await tickFor(30);
    await op("heartbeat", { agent: "a1", item: item.id });
    const seen = await tickFor(120);
    expect(seen.find((e) => e.type === "claim_released")).toBeUndefined();
    expect((await op<Item>("item.get", { id: item.id })).claim?.agent_id).toBe("a1");
  });

  test("a heartbeat naming a held item renews the claim (in the daemon) once less than half the lease is left", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    await op("item.claim", { id: item.id, agent: "a1", ttl_secs: 100 });
    clock.advance(40_000);
    await op("heartbeat", { agent: "a1", item: item.id });
    await rt.ctx.bus.idle();
    expect(Date.parse((await op<Item>("item.get", { id: item.id })).claim!.expires_at)).toBe(clock.now() + 60_000);
    clock.advance(20_000);
    await op("heartbeat", { agent: "a1", item: item.id });
    await rt.ctx.bus.idle();
    expect(Date.parse((await op<Item>("item.get", { id: item.id })).claim!.expires_at)).toBe(clock.now() + 100_000);
    clock.advance(55_000); // 45 s left of a 100 s lease: renewed to 100 s again, not longer
    await op("heartbeat", { agent: "a1", item: item.id });
    await rt.ctx.bus.idle();
    expect(Date.parse((await op<Item>("item.get", { id: item.id })).claim!.expires_at)).toBe(clock.now() + 100_000);
  });
});

describe("auto-assign", () => {
  test("3 assignable agents and 5 ready items: one distinct item each; a paused agent waits for its time; reconcile adds nothing", async () => {
    writeFileSync(project.paths.config, '[hub]\nremote = ""\n');
    await rt.close();
    ({ rt, events } = await testRuntime(project.paths, { clock }));
    for (let i = 0; i < 5; i++) await op("item.create", { title: `ready ${i}`, priority: 1 });
    await op("agent.pause", { agent: "a4", until: "10m" });
    for (const agent of ["a1", "a2", "a3", "a4"]) await op("heartbeat", { agent, accepts_work: true });
    await rt.ctx.services.autoAssign.run();
    await rt.ctx.bus.idle();
    const assigned = events.filter((e) => e.type === "assigned") as Array<BusEvent<"assigned">>;
    expect(assigned.map((e) => e.agent_id).sort()).toEqual(["a1", "a2", "a3"]);
    expect(new Set(assigned.map((e) => e.item_id)).size).toBe(3);
    expect((await rt.reconcile()).pipeline).toMatchObject({ assigned: 0 });
    expect(events.filter((e) => e.type === "assigned")).toHaveLength(3);

    clock.advance(10 * 60_000);
    await op("heartbeat", { agent: "a4", accepts_work: true });
    await rt.tick();
    await rt.ctx.services.autoAssign.run();
    await rt.ctx.bus.idle();
    expect(events.some((e) => e.type === "agent_resumed" && (e as BusEvent<"agent_resumed">).agent_id === "a4")).toBe(
      true,
    );
    expect(events.filter((e) => e.type === "assigned").map((e) => (e as BusEvent<"assigned">).agent_id)).toContain(
      "a4",
    );
  });

  test("only agents that accept work are given it: a hook's heartbeat, an exiting or a stuck agent get nothing", async () => {
    writeFileSync(project.paths.config, '[hub]\nremote = ""\n');
    await rt.close();
    ({ rt, events } = await testRuntime(project.paths, { clock }));
    for (let i = 0; i < 4; i++) await op("item.create", { title: `ready ${i}` });
    await op("heartbeat", { agent: "claude-hook" }); // what `drover hook claude` writes at SessionStart
    await op("heartbeat", { agent: "leaving", state: "exiting", accepts_work: true });
    await op("heartbeat", { agent: "wedged", state: "stuck", accepts_work: true });
    await op("heartbeat", { agent: "listener", accepts_work: true });
    await rt.ctx.services.autoAssign.run();
    await rt.ctx.bus.idle();
    expect(events.filter((e) => e.type === "assigned").map((e) => (e as BusEvent<"assigned">).agent_id)).toEqual([
      "listener",
    ]);
    const rows = await op<AgentRow[]>("agents.list", {});
    expect(rows.map((r) => [r.agent_id, r.accepts_work])).toEqual([
      ["claude-hook", false],
      ["leaving", true],
      ["listener", true],
      ["wedged", true],
    ]);
    // the same agent heartbeating without the flag (its hooks) is no longer assignable once it holds nothing
    await op("heartbeat", { agent: "listener" });
    expect((await op<AgentRow[]>("agents.list", {})).find((r) => r.agent_id === "listener")?.accepts_work).toBe(false);
  });

  test("a heartbeat without accepts_work means false everywhere it is read; a file is written without it", async () => {
    const file = join(project.paths.hub, "heartbeats", "hook.json");
    const beat = { agent_id: "hook", machine_id: "m", last_heartbeat: iso(clock.now()), active_item_id: null };
    writeFileSync(file, JSON.stringify({ ...beat, state: "idle" }));
    expect(parseHeartbeat("hook.json", readFileSync(file, "utf8"))).toEqual({
      heartbeat: { ...beat, state: "idle", accepts_work: false },
    });
    await rt.tick();
    await rt.ctx.bus.idle();
    expect(events.find((e) => e.type === "heartbeat")).toMatchObject({ agent_id: "hook", accepts_work: false });
    expect((await op<AgentRow[]>("agents.list", {}))[0]).toMatchObject({ agent_id: "hook", accepts_work: false });
    await op("heartbeat", { agent: "hook" });
    expect(JSON.parse(readFileSync(file, "utf8"))).not.toHaveProperty("accepts_work");
  });
});

describe("malformed heartbeat files", () => {
  test("are skipped with one warning per distinct content and listed as invalid by agents --all", async () => {
    const dir = join(project.paths.hub, "heartbeats");
    writeFileSync(join(dir, "badjson.json"), "{ nope");
    writeFileSync(
      join(dir, "types.json"),
      JSON.stringify({ agent_id: "types", machine_id: 5, last_heartbeat: "x", active_item_id: null, state: "idle" }),
    );
    writeFileSync(join(dir, "huge.json"), "x".repeat(5 * 1024 * 1024));
    writeFileSync(join(dir, "bad name!.json"), "{}");
    await op("heartbeat", { agent: "good" });
    await rt.reconcile();
    await rt.reconcile();
    const warnings = logLines.filter((l) => l.includes("Skipping heartbeat file"));
    expect(warnings).toHaveLength(4);
    writeFileSync(join(dir, "badjson.json"), "{ still nope");
    await rt.reconcile();
    expect(logLines.filter((l) => l.includes("Skipping heartbeat file"))).toHaveLength(5);
    expect((await op<AgentRow[]>("agents.list", {})).map((a) => a.agent_id)).toEqual(["good"]);
    const all = await op<AgentRow[]>("agents.list", { all: true });
    expect(all.filter((a) => a.status === "invalid").map((a) => [a.agent_id, a.reason])).toEqual([
      ["bad name!", "file name is not a valid agent id"],
      ["badjson", "not valid JSON"],
      ["huge", "file too large (5242880 bytes)"],
      ["types", 'invalid "machine_id": Invalid input: expected string, received number'],
    ]);
    // invalid files stay out of this machine's presence commit
    const presence = (await rt.ctx.hub.presence.build(Date.now()))!;
    const committed = execFileSync("git", ["ls-tree", "--name-only", presence, "heartbeats/"], {
      cwd: project.paths.hub,
      encoding: "utf8",
    });
    expect(committed.trim().split("\n")).toEqual(["heartbeats/good.json"]);
  });
});

describe("flood", () => {
  test("10,000 heartbeats from 50 agents: events in order per agent, 50 agents tracked, no commit on the shared branch", async () => {
    const commits = () =>
      Number(execFileSync("git", ["rev-list", "--count", "drover/hub"], { cwd: project.paths.hub, encoding: "utf8" }));
    const before = commits();
    const n = events.length;
    for (let i = 0; i < 10_000; i++) {
      clock.advance(1);
      await op("heartbeat", { agent: `agent-${i % 50}` });
    }
    await rt.tick(); // one round
    const beats = (await since(n)).filter((e) => e.type === "heartbeat") as Array<BusEvent<"heartbeat">>;
    expect(beats).toHaveLength(10_000);
    const last = new Map<string, string>();
    for (const b of beats) {
      expect(b.last_heartbeat > (last.get(b.agent_id) ?? "")).toBe(true);
      last.set(b.agent_id, b.last_heartbeat);
    }
    expect(rt.ctx.services.heartbeats.monitor.agents().size).toBe(50);
    expect(commits() - before).toBe(0);
    // they travel on this machine's presence ref instead: one commit of the 50 latest
    const presence = (await rt.ctx.hub.presence.build(clock.now()))!;
    const files = await rt.ctx.hub.repo.files(presence, "heartbeats/");
    expect(files).toHaveLength(50);
    const latest = JSON.parse(
      (await rt.ctx.hub.repo.readBlob(files.find((f) => f.path.endsWith("/agent-7.json"))!.oid))!,
    );
    expect(latest.last_heartbeat).toBe(last.get("agent-7"));
    expect(await rt.ctx.hub.presence.build(clock.now())).toBe(presence); // nothing changed: the same commit
  }, 60_000);
});

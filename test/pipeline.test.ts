import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import { canonicalJson } from "../core/json.ts";
import { type Item, itemPath } from "../features/pipeline/item.ts";
import { formatCommitMessage } from "../hub/apply.ts";
import type { Runtime } from "../runtime.ts";
import { bareRepo } from "./git-server.ts";
import { refused, tempProject, testRuntime } from "./helpers.ts";
import { type Machine, machine } from "./sync-machines.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;

beforeEach(async () => {
  project = await tempProject();
  clock = manualClock("2026-04-01T10:00:00Z");
  ({ rt, events } = await testRuntime(project.paths, { clock }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = Item>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
async function settled() {
  await rt.ctx.bus.idle();
  return events.map((e) => e.type);
}

describe("items", () => {
  test("create, get and list with filters, by priority then age", async () => {
    const a = await op("item.create", { title: "low", priority: 3, labels: ["x"] });
    clock.advance(1000);
    const b = await op("item.create", { title: "high", priority: 0 });
    clock.advance(1000);
    const c = await op("item.create", { title: "high later", priority: 0, labels: ["x", "y"] });
    expect(a.id).toMatch(/^[a-z2-7]{5}$/);
    expect(await op("item.get", { id: a.id })).toEqual(a);
    expect((await op<Item[]>("items.list", {})).map((i) => i.title)).toEqual(["high", "high later", "low"]);
    expect((await op<Item[]>("items.list", { label: "x" })).map((i) => i.id)).toEqual([c.id, a.id]);
    await op("item.claim", { id: b.id, agent: "a1" });
    expect((await op<Item[]>("items.list", { assignee: "a1" })).map((i) => i.id)).toEqual([b.id]);
    expect(await op<Item[]>("items.list", { stage: "coding" })).toEqual([]);
    expect(readFileSync(join(project.paths.hub, itemPath(a.id)), "utf8")).toBe(canonicalJson(a));
    expect(await settled()).toEqual(["item_created", "item_created", "item_created", "item_updated", "claimed"]);
  });

  test("an unknown id is not_found; a missing dependency too", async () => {
    expect((await refused(op("item.get", { id: "zzzzz" }))).code).toBe("not_found");
    expect((await refused(op("item.create", { title: "x", depends_on: ["zzzzz"] }))).code).toBe("not_found");
  });
});

describe("moves", () => {
  test("legal moves emit transition with agent and reason; illegal ones list the legal targets", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.move", { id: it.id, to: "coding", agent: "a1", reason: "starting" });
    const err = await refused(op("item.move", { id: it.id, to: "archived" }));
    expect(err.code).toBe("illegal_transition");
    expect(err.message).toBe(
      'Cannot move item "' +
        it.id +
        '" from "coding" to "archived": legal targets are "qa", "merge", "backlog", "blocked", "abandoned"',
    );
    await settled();
    expect(events.find((e) => e.type === "transition")).toMatchObject({
      item_id: it.id,
      from: "backlog",
      to: "coding",
      agent_id: "a1",
      reason: "starting",
    });
  });

  test("a stale fence is refused before anything else", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.claim", { id: it.id, agent: "a1" });
    await op("item.release", { id: it.id, agent: "a1", fence: 1 });
    await op("item.claim", { id: it.id, agent: "a2" });
    const err = await refused(op("item.move", { id: it.id, to: "archived", fence: 1 })); // also illegal, but the fence comes first
    expect(err.code).toBe("stale_fence");
    expect((await refused(op("item.release", { id: it.id, agent: "a1", fence: 1 }))).code).toBe("stale_fence");
  });

  test("coding waits for dependencies unless forced", async () => {
    const dep = await op("item.create", { title: "dep" });
    const it = await op("item.create", { title: "x", depends_on: [dep.id] });
    const err = await refused(op("item.move", { id: it.id, to: "coding" }));
    expect(err.code).toBe("blocked_by_deps");
    expect(err.details).toEqual({ unmet: [dep.id] });
    expect((await op("item.move", { id: it.id, to: "coding", force: true })).stage).toBe("coding");
  });

  test("an agent cannot move an item another agent holds", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.claim", { id: it.id, agent: "a1" });
    expect((await refused(op("item.move", { id: it.id, to: "coding", agent: "a2" }))).code).toBe("claimed");
    expect((await op("item.move", { id: it.id, to: "coding", agent: "a1" })).stage).toBe("coding");
  });

  test("entering done releases the claim; done is archived after the retention", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.next", { agent: "a1" });
    for (const to of ["qa", "merge", "done"]) await op("item.move", { id: it.id, to });
    expect((await op("item.get", { id: it.id })).claim).toBeNull();
    clock.advance(14_399_000);
    await rt.tick();
    expect((await op("item.get", { id: it.id })).stage).toBe("done");
    clock.advance(1000);
    await rt.tick();
    expect((await op("item.get", { id: it.id })).stage).toBe("archived");
    await settled();
    expect(events.filter((e) => e.type === "claim_released")).toMatchObject([{ agent_id: "a1", reason: "released" }]);
    expect(events.filter((e) => e.type === "transition").map((e) => (e as BusEvent<"transition">).to)).toEqual([
      "coding",
      "qa",
      "merge",
      "done",
      "archived",
    ]);
  });
});

describe("claims", () => {
  test("one holder; the holder re-claiming extends; each grant's fence is one more than the last", async () => {
    const it = await op("item.create", { title: "x" });
    const c1 = await op<{ fence: number; claim: { expires_at: string }; confirmed: boolean }>("item.claim", {
      id: it.id,
      agent: "a1",
      ttl_secs: 60,
    });
    expect(c1.fence).toBe(1);
    expect(c1.confirmed).toBe(true); // local hub: nothing else to confirm against
    const err = await refused(op("item.claim", { id: it.id, agent: "a2" }));
    expect(err.code).toBe("claimed");
    expect(err.message).toBe(`Cannot claim item "${it.id}": held by "a1"`);
    clock.advance(10_000);
    const again = await op<{ fence: number; claim: { expires_at: string } }>("item.claim", {
      id: it.id,
      agent: "a1",
      ttl_secs: 60,
    });
    expect(again.fence).toBe(1);
    expect(Date.parse(again.claim.expires_at)).toBe(clock.now() + 60_000);
    expect((await refused(op("item.release", { id: it.id, agent: "a2", fence: 1 }))).code).toBe("not_holder");
    await op("item.release", { id: it.id, agent: "a1", fence: 1 });
    expect((await op<{ fence: number }>("item.claim", { id: it.id, agent: "a2" })).fence).toBe(2);
  });

  test("an expired claim is released by the tick with reason expired, and can be taken", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.claim", { id: it.id, agent: "a1", ttl_secs: 30 });
    clock.advance(29_000);
    await rt.tick();
    expect((await op("item.get", { id: it.id })).claim?.agent_id).toBe("a1");
    clock.advance(1000);
    await rt.tick();
    expect((await op("item.get", { id: it.id })).claim).toBeNull();
    await settled();
    expect(events.filter((e) => e.type === "claim_released")).toMatchObject([
      { item_id: it.id, agent_id: "a1", reason: "expired" },
    ]);
    expect((await op<{ fence: number }>("item.claim", { id: it.id, agent: "a2" })).fence).toBe(2);
  });

  test("renew extends only the holder's claim", async () => {
    const it = await op("item.create", { title: "x" });
    await op("item.claim", { id: it.id, agent: "a1", ttl_secs: 30 });
    expect((await refused(op("item.renew", { id: it.id, agent: "a2" }))).code).toBe("not_holder");
    clock.advance(20_000);
    const renewed = await op("item.renew", { id: it.id, agent: "a1", ttl_secs: 30 });
    expect(Date.parse(renewed.claim!.expires_at)).toBe(clock.now() + 30_000);
  });
});

describe("item.next", () => {
  test("takes the best ready item (priority, then age), skips unmet dependencies, moves it into coding", async () => {
    const dep = await op("item.create", { title: "dep", priority: 2 });
    clock.advance(1000);
    await op("item.create", { title: "waits", priority: 0, depends_on: [dep.id] });
    clock.advance(1000);
    const urgent = await op("item.create", { title: "urgent", priority: 1 });
    const got = await op<{ item: Item; fence: number }>("item.next", { agent: "a1" });
    expect(got.item).toMatchObject({ id: urgent.id, stage: "coding", claim: { agent_id: "a1", fence: 1 } });
    expect((await op<{ item: Item }>("item.next", { agent: "a2" })).item.id).toBe(dep.id);
    expect((await op<{ item: Item | null }>("item.next", { agent: "a3" })).item).toBeNull();
  });

  test("concurrent calls in one process never hand one item to two agents", async () => {
    for (let i = 0; i < 5; i++) await op("item.create", { title: `t${i}` });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => op<{ item: Item | null }>("item.next", { agent: `a${i}` })),
    );
    const ids = results.map((r) => r.item?.id).filter(Boolean);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
  });
});

describe("item.next filters", () => {
  type Next = { item: Item | null };
  const next = (input: Record<string, unknown>) => op<Next>("item.next", input).then((r) => r.item);

  test("stages: coding takes unclaimed backlog or coding items, qa only qa items; without filters nothing changes", async () => {
    const backlog = await op("item.create", { title: "backlog", priority: 1 });
    clock.advance(1000);
    const coding = await op("item.create", { title: "coding", priority: 0, stage: "coding" });
    clock.advance(1000);
    const qa = await op("item.create", { title: "qa", priority: 0, stage: "qa" });
    clock.advance(1000);
    const merge = await op("item.create", { title: "merge", priority: 3, stage: "merge" });
    await op("item.create", { title: "blocked", priority: 0, stage: "blocked" });

    expect(await next({ agent: "q1", stages: ["qa"] })).toMatchObject({
      id: qa.id,
      stage: "qa",
      claim: { agent_id: "q1" },
    });
    expect(await next({ agent: "q2", stages: ["qa"] })).toBeNull();
    expect(await next({ agent: "c1", stages: ["coding"] })).toMatchObject({ id: coding.id, stage: "coding" });
    expect(await next({ agent: "c2", stages: ["coding"] })).toMatchObject({ id: backlog.id, stage: "coding" });
    expect(await next({ agent: "c3", stages: ["coding"] })).toBeNull();
    expect(await next({ agent: "b1", stages: ["blocked", "done"] })).toBeNull();
    expect(await next({ agent: "m1", stages: ["qa", "merge"] })).toMatchObject({ id: merge.id, stage: "merge" });
  });

  test("stages: a backlog item is not taken for qa or merge; unfiltered, the best ready item in any stage", async () => {
    const backlog = await op("item.create", { title: "backlog", priority: 0 });
    clock.advance(1000);
    const qa = await op("item.create", { title: "qa", priority: 2, stage: "qa" });
    expect(await next({ agent: "m1", stages: ["merge"] })).toBeNull();
    expect(await next({ agent: "a1" })).toMatchObject({ id: backlog.id, stage: "coding" });
    expect(await next({ agent: "a2" })).toMatchObject({ id: qa.id, stage: "qa" });
  });

  test("labels: only items carrying all of them", async () => {
    const plain = await op("item.create", { title: "plain", priority: 0 });
    const x = await op("item.create", { title: "x", priority: 1, labels: ["x"] });
    const xy = await op("item.create", { title: "xy", priority: 2, labels: ["y", "x"] });
    expect(await next({ agent: "a1", labels: ["x", "y"] })).toMatchObject({ id: xy.id });
    expect(await next({ agent: "a2", labels: ["x", "y"] })).toBeNull();
    expect(await next({ agent: "a3", labels: ["x"], stages: ["qa"] })).toBeNull();
    expect(await next({ agent: "a4", labels: ["x"], stages: ["coding"] })).toMatchObject({ id: x.id });
    expect(await next({ agent: "a5", labels: [] })).toMatchObject({ id: plain.id });
  });

  test("the filters are recorded with the op; an empty or unknown stage list is invalid input", async () => {
    await op("item.create", { title: "x", labels: ["ui"] });
    await next({ agent: "a1", stages: ["coding"], labels: ["ui"] });
    const git = (...args: string[]) => execFileSync("git", args, { cwd: project.paths.hub, encoding: "utf8" });
    const recorded = git("log", "-1", "--format=%B", "drover/hub")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
    expect(recorded).toMatchObject([{ op: "item.next", args: { agent: "a1", stages: ["coding"], labels: ["ui"] } }]);
    expect((await refused(next({ agent: "a2", stages: [] }))).code).toBe("invalid_input");
    expect((await refused(next({ agent: "a2", stages: ["nowhere"] }))).code).toBe("invalid_input");
    expect((await refused(next({ agent: "a2", labels: ["a,b"] }))).code).toBe("invalid_input");
  });
});

describe("item.next filters across machines", () => {
  const remote = bareRepo();
  const machines: Machine[] = [];
  afterAll(async () => {
    for (const m of machines) await m.cleanup();
    rmSync(remote.root, { recursive: true, force: true });
  });

  test("a replay refuses an item that no longer matches the stages it was taken for", async () => {
    const a = await machine(remote.path);
    machines.push(a);
    const b = await machine(remote.path);
    machines.push(b);
    const it = await a.op("item.create", { title: "coding work", stage: "coding" });
    await a.op("sync.now");
    await b.op("sync.now");
    await a.op("item.move", { id: it.id, to: "qa" });
    await a.op("sync.now");
    // b still sees it in coding and takes it for a coding runner; on the remote it is in qa: refused, not taken
    const err = await b.op("item.next", { agent: "coder", stages: ["coding"] }).catch((e) => e);
    expect(err).toMatchObject({
      code: "claimed",
      message: `Cannot claim item "${it.id}": it no longer matches the stages or labels asked for (qa)`,
    });
    expect(await b.op("item.get", { id: it.id })).toMatchObject({ stage: "qa", claim: null });
  });
});

describe("hub", () => {
  test("ops that arrive together share one commit; real git sees the ops and fsck is clean", async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => op("item.create", { title: `batch ${i}` })));
    const git = (...args: string[]) => execFileSync("git", args, { cwd: project.paths.hub, encoding: "utf8" });
    const commits = git("rev-list", "--count", "drover/hub").trim();
    expect(Number(commits)).toBeLessThan(1 + 20); // init + fewer commits than ops
    const log = git("log", "--format=%B", "drover/hub");
    expect(log.match(/"op":"item\.create"/g)).toHaveLength(20);
    git("fsck", "--strict");
    const entries = (await rt.ops.run("log", { limit: 5 })) as Array<{ op: string }>;
    expect(entries).toHaveLength(5);
    expect(entries[0]!.op).toBe("item.create");
  });

  test("a hand-corrupted item file is set aside, restored and reported by reconcile; a second reconcile finds nothing", async () => {
    const it = await op("item.create", { title: "precious" });
    const file = join(project.paths.hub, itemPath(it.id));
    writeFileSync(file, "{ this is not json");
    const reports = await rt.reconcile();
    expect(reports.pipeline).toEqual({ changed: 2, restored: 1, rejected: 1, assigned: 0 });
    expect(JSON.parse(readFileSync(file, "utf8")).title).toBe("precious");
    const aside = readdirSync(join(project.paths.dir, "rejected"));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(project.paths.dir, "rejected", aside[0]!), "utf8")).toBe("{ this is not json");
    expect(await settled()).toContain("hub_invalid_file");
    expect((await rt.reconcile()).pipeline).toEqual({ changed: 0, restored: 0, rejected: 0, assigned: 0 });
  });

  test("a commit the index never saw (crash after the ref moved) is caught up by reconcile, with its events", async () => {
    // a commit carrying no op of this machine (here: made by hand; in life: a remote head adopted when the
    // crash came) is published as coming from elsewhere; one of this machine's own batches as local
    const hub = rt.ctx.hub;
    const item: Item = {
      id: "qqqqq",
      title: "from nowhere",
      body: "",
      labels: [],
      priority: 2,
      stage: "backlog",
      depends_on: [],
      claim: null,
      fence: 0,
      created_at: "2026-04-01T10:00:00.000Z",
      created_by: "x",
      updated_at: "2026-04-01T10:00:00.000Z",
    };
    await hub.repo.commit(new Map([[itemPath(item.id), canonicalJson(item)]]), {
      parent: await hub.repo.head(),
      message: "by hand\n",
      time: clock.now(),
    });
    expect((await rt.reconcile()).hub).toMatchObject({ changed: 1 });
    expect(await op("item.get", { id: "qqqqq" })).toEqual(item);
    expect(existsSync(join(project.paths.hub, itemPath("qqqqq")))).toBe(true);
    expect(await settled()).toContain("item_created");
    expect(events.find((e) => e.type === "item_created")?.origin).toBe("remote");

    const own = { ...item, id: "ooooo", title: "our own batch" };
    const record = {
      id: `${rt.ctx.machineId}.lost`,
      op: "item.create",
      args: { title: own.title, id: own.id },
      machine_id: rt.ctx.machineId,
      at: own.created_at,
    };
    await hub.repo.commit(new Map([[itemPath(own.id), canonicalJson(own)]]), {
      parent: await hub.repo.head(),
      message: formatCommitMessage([record]),
      time: clock.now(),
    });
    await rt.reconcile();
    await settled();
    expect(
      events.filter((e) => e.type === "item_created").map((e) => [(e as BusEvent<"item_created">).item_id, e.origin]),
    ).toEqual([
      ["qqqqq", "remote"],
      ["ooooo", "local"],
    ]);
  });

  test("a hub file that is garbage in a commit is skipped and reported, not fatal", async () => {
    const hub = rt.ctx.hub;
    await hub.repo.commit(new Map([[itemPath("ggggg"), "garbage"]]), {
      parent: await hub.repo.head(),
      message: "bad\n",
      time: clock.now(),
    });
    await rt.reconcile();
    expect((await refused(op("item.get", { id: "ggggg" }))).code).toBe("not_found");
    const status = (await rt.ops.run("sync.status", {})) as { invalid_files: Array<{ path: string; reason: string }> };
    expect(status.invalid_files).toEqual([
      expect.objectContaining({ path: itemPath("ggggg"), reason: "not valid JSON" }),
    ]);
    expect(await op<Item[]>("items.list", {})).toEqual([]);
  });
});

describe("claims with a remote configured", () => {
  test("answer confirmed: false until a push confirms them", async () => {
    const p = await tempProject({ config: '[hub]\nremote = "origin"\n' });
    const { rt: remoteRt } = await testRuntime(p.paths);
    const it = (await remoteRt.ops.run("item.create", { title: "x" })) as Item;
    expect(await remoteRt.ops.run("item.claim", { id: it.id, agent: "a1" })).toMatchObject({
      fence: 1,
      confirmed: false,
    });
    expect(await remoteRt.ops.run("sync.status", {})).toMatchObject({ remote: "origin", pending_ops: 2 });
    await remoteRt.close();
    p.cleanup();
  });
});

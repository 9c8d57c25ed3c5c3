import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { substitute } from "../core/actions.ts";
import { manualClock } from "../core/clock.ts";
import { DroverError } from "../core/errors.ts";
import type { BusEvent } from "../core/events.ts";
import type { Item } from "../features/pipeline/item.ts";
import { createChainBudget } from "../features/triggers/chain.ts";
import type { Runtime } from "../runtime.ts";
import { PING_PONG } from "./fixtures/ping-pong.ts";
import { tempProject, testRuntime } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];

beforeEach(async () => {
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  ({ rt, events } = await testRuntime(project.paths, { clock: manualClock("2026-08-01T08:00:00Z") }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
/**
 * Waits until the chain of triggered actions has played out: every event handled, every action it caused ended
 * (each ends with an event of its own), until a round brings no new event.
 */
async function settle() {
  await rt.ctx.bus.idle();
  for (let n = -1; n !== events.length; ) {
    n = events.length;
    await rt.ctx.services.actions.settle();
    await rt.ctx.bus.idle();
  }
}
const of = <T extends BusEvent["type"]>(type: T) =>
  events.filter((e) => e.type === type) as unknown as Array<BusEvent<T>>;

describe("triggers", () => {
  test('to: qa with {op: "item.move", args: {id: "$event.item_id", to: "merge"}} moves items on', async () => {
    await op("trigger.add", {
      on: { to: "qa" },
      mode: "persistent",
      op: "item.move",
      args: { id: "$event.item_id", to: "merge", reason: "auto" },
    });
    const a = await op<Item>("item.create", { title: "a" });
    const b = await op<Item>("item.create", { title: "b" });
    for (const it of [a, b]) for (const to of ["coding", "qa"]) await op("item.move", { id: it.id, to });
    await settle();
    for (const it of [a, b]) expect((await op<Item>("item.get", { id: it.id })).stage).toBe("merge");
    expect(of("trigger_fired").map((e) => [e.item_id, e.result])).toEqual([
      [a.id, "ok"],
      [b.id, "ok"],
    ]);
    const auto = of("transition").filter((e) => e.to === "merge");
    expect(auto.map((e) => e.reason)).toEqual(["auto", "auto"]);
    expect(auto[0]!.cause).toMatchObject({ depth: 1 });
  });

  test("two triggers moving an item back and forth stop at depth 8 with trigger_loop_halted", async () => {
    for (const t of PING_PONG) await op("trigger.add", t);
    const it = await op<Item>("item.create", { title: "ping-pong" });
    await op("item.move", { id: it.id, to: "coding" });
    await op("item.move", { id: it.id, to: "qa" });
    await settle();
    expect(of("trigger_fired")).toHaveLength(8);
    expect(of("trigger_loop_halted")).toEqual([expect.objectContaining({ item_id: it.id, depth: 8 })]);
    expect(
      of("transition")
        .filter((e) => e.cause)
        .map((e) => e.cause!.depth),
    ).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test("a once trigger fires once and is gone before its action runs", async () => {
    const t = await op("trigger.add", { on: { to: "coding" }, mode: "once", prompt: "review what started" });
    for (let i = 0; i < 3; i++) {
      const it = await op<Item>("item.create", { title: `x${i}` });
      await op("item.move", { id: it.id, to: "coding" });
    }
    await settle();
    expect(of("trigger_fired")).toHaveLength(1);
    expect(await op<any[]>("trigger.list", {})).toEqual([]);
    expect((await op<any[]>("trigger.list", { all: true }))[0]).toMatchObject({
      id: t.id,
      state: "fired",
      fired_count: 1,
    });
    expect((await op<Item[]>("items.list", { label: "prompt" })).map((i) => i.title)).toEqual(["review what started"]);
  });

  test("item and agent globs, labels, and events that arrived by sync", async () => {
    await op("trigger.add", {
      on: { event: "claimed", agent: "bot-*", labels: ["ui"] },
      mode: "persistent",
      op: "items.list",
      args: {},
    });
    const ui = await op<Item>("item.create", { title: "ui", labels: ["ui", "web"] });
    const api = await op<Item>("item.create", { title: "api", labels: ["api"] });
    await op("item.claim", { id: ui.id, agent: "human-1" });
    await op("item.claim", { id: api.id, agent: "bot-1" });
    await settle();
    expect(of("trigger_fired")).toHaveLength(0);
    await op("item.release", { id: ui.id, agent: "human-1", fence: 1 });
    await op("item.claim", { id: ui.id, agent: "bot-7" });
    rt.ctx.bus.publish(
      "claimed",
      { item_id: ui.id, agent_id: "bot-remote", fence: 9, expires_at: "x" },
      { origin: "remote" },
    );
    await settle();
    expect(of("trigger_fired").map((e) => e.item_id)).toEqual([ui.id, ui.id]);
  });

  test("actions are checked when the trigger is made; placeholders stand where a value will come", async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mode: "once", op: "item.move", args: { id: "$event.item_id", to: "somewhere" } }, /op "item.move": "to"/],
      [{ mode: "once", op: "nope" }, /no op named "nope"/],
      [{ mode: "once", op: "sync.adopt" }, /op "sync.adopt" is a person's choice, run only from the CLI/],
      [{ mode: "sometimes", op: "items.list" }, /"mode"/],
      [{ on: { event: "no_such_event" }, mode: "once", op: "items.list" }, /"on.event"/],
      [{ on: { to: "heaven" }, mode: "once", op: "items.list" }, /"on.to"/],
      [
        { on: { event: "item_created", to: ["qa", "done"] }, mode: "once", op: "items.list" },
        /^Invalid "on.to": is not a field of "item_created" events$/,
      ],
      // names every object has are no event types
      ...["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"].map((event): [unknown, RegExp] => [
        { on: { event }, mode: "persistent", op: "items.list" },
        /"on.event": is not an event type/,
      ]),
      [
        { on: { event: "trigger_loop_halted" }, mode: "persistent", op: "items.list" },
        /"on.event": is trigger_loop_halted, which no trigger/,
      ],
    ];
    for (const [input, message] of bad) {
      let err: unknown;
      await op("trigger.add", input).catch((e) => (err = e));
      expect(err).toBeInstanceOf(DroverError);
      expect((err as DroverError).message).toMatch(message);
    }
    expect(await op<any[]>("trigger.list", {})).toEqual([]);
  });
});

describe("chains are bounded in width", () => {
  const create = { op: "item.create", args: { title: "more" } };

  test("three triggers that each create an item on item_created: one create makes 100 actions, then one trigger_loop_halted", async () => {
    for (let i = 0; i < 3; i++)
      await op("trigger.add", { on: { event: "item_created" }, mode: "persistent", ...create });
    await op("item.create", { title: "seed" });
    await settle();
    expect(await op<Item[]>("items.list", {})).toHaveLength(101);
    const fired = of("trigger_fired");
    expect(fired).toHaveLength(100);
    const chain = fired[0]!.cause!.chain!;
    expect(chain).toMatch(/^ch[a-z2-7]{10}$/);
    expect(fired.every((e) => e.cause!.chain === chain && e.result === "ok")).toBe(true);
    expect(of("trigger_loop_halted")).toEqual([
      expect.objectContaining({ reason: "budget", cause: { depth: expect.any(Number), chain } }),
    ]);
    expect(rt.ctx.services.triggerChains.size()).toBeGreaterThan(0);
    // a new originating event is a new chain with a budget of its own
    await op("item.create", { title: "seed 2" });
    await settle();
    expect(of("trigger_fired")).toHaveLength(200);
    expect(new Set(of("trigger_fired").map((e) => e.cause!.chain)).size).toBe(2);
  });

  test("a timer firing starts its own chain: its action and everything after it share one budget", async () => {
    for (let i = 0; i < 2; i++)
      await op("trigger.add", { on: { event: "item_created" }, mode: "persistent", ...create });
    await op("timer.add", { in: "1s", ...create });
    (rt.ctx.clock as ReturnType<typeof manualClock>).advance(1000);
    await rt.tick();
    await settle();
    const timerChain = of("timer_fired")[0]!.cause!.chain;
    expect(timerChain).toMatch(/^ch[a-z2-7]{10}$/);
    expect(of("item_created")[0]!.cause).toMatchObject({ depth: 0, chain: timerChain });
    expect(of("trigger_fired")).toHaveLength(100);
    expect(of("trigger_fired").every((e) => e.cause!.chain === timerChain)).toBe(true);
    expect(of("trigger_loop_halted").map((e) => e.reason)).toEqual(["budget"]);
  });

  test("a chain at the depth limit is reported once, however many triggers its last events match", async () => {
    for (const t of PING_PONG) await op("trigger.add", t);
    await op("trigger.add", { on: { to: "qa" }, mode: "persistent", op: "items.list", args: {} });
    await op("trigger.add", { on: { event: "trigger_fired" }, mode: "persistent", op: "items.list", args: {} });
    const it = await op<Item>("item.create", { title: "x" });
    await op("item.move", { id: it.id, to: "coding" });
    await op("item.move", { id: it.id, to: "qa" });
    await settle();
    expect(of("trigger_loop_halted")).toEqual([expect.objectContaining({ reason: "depth", depth: 8 })]);
    const fired = of("trigger_fired");
    expect(new Set(fired.map((e) => e.cause!.chain)).size).toBe(1);
    expect(Math.max(...fired.map((e) => e.cause!.depth))).toBe(8);
    expect(fired.length).toBeLessThanOrEqual(100);
  });

  test("a trigger on trigger_added whose action adds triggers: the events its ops publish stay in its chain", async () => {
    const adder = {
      op: "trigger.add",
      args: { on: { event: "trigger_added" }, mode: "persistent", op: "items.list", args: {} },
    };
    await op("trigger.add", { on: { event: "trigger_added" }, mode: "persistent", ...adder });
    await settle();
    expect(of("trigger_fired").length).toBeLessThanOrEqual(100);
    expect(new Set(of("trigger_fired").map((e) => e.cause!.chain)).size).toBe(1);
    expect((await op<unknown[]>("trigger.list", {})).length).toBeLessThanOrEqual(101);
    expect(of("trigger_loop_halted")).toHaveLength(1);
  });

  test("a trigger on heartbeat whose action is a heartbeat: events any op publishes stay in the chain (it ran 831 times a second)", async () => {
    await rt.close();
    ({ rt, events } = await testRuntime(project.paths)); // real time: every beat is a new timestamp, so a new event
    await op("trigger.add", {
      on: { event: "heartbeat" },
      mode: "persistent",
      op: "heartbeat",
      args: { agent: "echo" },
    });
    await op("heartbeat", { agent: "origin" });
    await settle();
    // each beat the action makes carries the chain one level deeper: the depth limit ends it (two beats in the same
    // millisecond are one event and may end it sooner)
    const fired = of("trigger_fired");
    expect(fired.length).toBeGreaterThan(0);
    expect(fired.length).toBeLessThanOrEqual(8);
    expect(new Set(fired.map((e) => e.cause!.chain)).size).toBe(1);
    expect(of("trigger_loop_halted").length).toBeLessThanOrEqual(1);
  });

  test("timers a trigger's action makes fire in that chain: a trigger cannot multiply timers past the budget", async () => {
    await rt.close();
    await Bun.write(
      project.paths.config,
      '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[triggers]\nmax_actions_per_event = 10\n',
    );
    ({ rt, events } = await testRuntime(project.paths, { clock: manualClock("2026-08-01T08:00:00Z") }));
    await op("trigger.add", {
      on: { event: "item_created" },
      mode: "persistent",
      op: "timer.add",
      args: { every: "1s", op: "item.create", args: { title: "tick" } },
    });
    await op("item.create", { title: "seed" });
    await settle();
    for (let i = 0; i < 6; i++) {
      (rt.ctx.clock as ReturnType<typeof manualClock>).advance(1000);
      await rt.tick();
      await settle();
    }
    const timers = await op<unknown[]>("timer.list", {});
    // one timer per trigger firing, all in the seed's chain: 10 at most (they doubled every second before)
    expect(timers.length).toBe(10);
    expect(new Set(of("timer_fired").map((e) => e.cause!.chain)).size).toBe(1);
    expect(of("trigger_loop_halted").map((e) => e.reason)).toEqual(["budget"]);
  });

  test("a cause that is not ours (from another machine's hub commit) is read safely", async () => {
    await op("trigger.add", { on: { event: "claimed" }, mode: "persistent", op: "items.list", args: {} });
    const it = await op<Item>("item.create", { title: "x" });
    const fields = { item_id: it.id, agent_id: "a", fence: 1, expires_at: "x" };
    rt.ctx.bus.publish("claimed", fields, {
      origin: "remote",
      cause: { depth: -5, chain: "x".repeat(10_000) } as never,
    });
    rt.ctx.bus.publish("claimed", fields, { origin: "remote", cause: { depth: 2, chain: "nope" } });
    await settle();
    // an unreadable depth is the limit; a foreign chain id is replaced by one of ours
    expect(of("trigger_loop_halted")).toEqual([expect.objectContaining({ reason: "depth", depth: 8 })]);
    const ours = expect.stringMatching(/^ch[a-z2-7]{10}$/);
    expect(of("trigger_fired").map((e) => e.cause)).toEqual([
      { trigger_id: expect.any(String), depth: 3, chain: ours },
    ]);
  });

  test("the per-chain counts are bounded: the least recently used chain is forgotten first", () => {
    const budget = createChainBudget(2, { maxChains: 3 });
    budget.spend("a");
    budget.spend("a");
    for (const c of ["b", "c"]) budget.spend(c);
    expect(budget.spent("a")).toBe(true); // touches "a": "b" is now the oldest
    budget.spend("d");
    expect(budget.size()).toBe(3);
    expect(budget.spent("a")).toBe(true);
    expect(budget.report("a", "budget")).toBe(true);
    expect(budget.report("a", "budget")).toBe(false);
    for (let i = 0; i < 10_000; i++) budget.spend(`n${i}`);
    expect(budget.size()).toBe(3);
  });

  test('"$event.<field>" takes only the event\'s own fields', () => {
    const event = { type: "claimed", item_id: "k7q2m" };
    expect(
      substitute(
        { a: "$event.item_id", b: ["$event.constructor", "$event.toString", "$event.__proto__", "$event.missing"] },
        event,
      ),
    ).toEqual({
      a: "k7q2m",
      b: [null, null, null, null],
    });
  });
});

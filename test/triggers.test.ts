import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { manualClock } from "../core/clock.ts";
import { DroverError } from "../core/errors.ts";
import type { BusEvent } from "../core/events.ts";
import type { Item } from "../features/pipeline/item.ts";
import type { Runtime } from "../runtime.ts";
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
/** Waits until the chain of triggered actions has played out. */
async function settle() {
  for (let quiet = 0; quiet < 5; ) {
    const n = events.length;
    await rt.ctx.bus.idle();
    await Bun.sleep(10);
    quiet = events.length === n ? quiet + 1 : 0;
  }
}
const of = <T extends BusEvent["type"]>(type: T) => events.filter((e) => e.type === type) as unknown as Array<BusEvent<T>>;

describe("triggers", () => {
  test('to: qa with {op: "item.move", args: {id: "$event.item_id", to: "merge"}} moves items on', async () => {
    await op("trigger.add", { on: { to: "qa" }, mode: "persistent", op: "item.move", args: { id: "$event.item_id", to: "merge", reason: "auto" } });
    const a = await op<Item>("item.create", { title: "a" });
    const b = await op<Item>("item.create", { title: "b" });
    for (const it of [a, b]) for (const to of ["coding", "qa"]) await op("item.move", { id: it.id, to });
    await settle();
    for (const it of [a, b]) expect((await op<Item>("item.get", { id: it.id })).stage).toBe("merge");
    expect(of("trigger_fired").map((e) => [e.item_id, e.result])).toEqual([[a.id, "ok"], [b.id, "ok"]]);
    const auto = of("transition").filter((e) => e.to === "merge");
    expect(auto.map((e) => e.reason)).toEqual(["auto", "auto"]);
    expect(auto[0]!.cause).toMatchObject({ depth: 1 });
  });

  test("two triggers moving an item back and forth stop at depth 8 with trigger_loop_halted", async () => {
    await op("trigger.add", { on: { to: "qa" }, mode: "persistent", op: "item.move", args: { id: "$event.item_id", to: "coding" } });
    await op("trigger.add", { on: { from: "qa", to: "coding" }, mode: "persistent", op: "item.move", args: { id: "$event.item_id", to: "qa" } });
    const it = await op<Item>("item.create", { title: "ping-pong" });
    await op("item.move", { id: it.id, to: "coding" });
    await op("item.move", { id: it.id, to: "qa" });
    await settle();
    expect(of("trigger_fired")).toHaveLength(8);
    expect(of("trigger_loop_halted")).toEqual([expect.objectContaining({ item_id: it.id, depth: 8 })]);
    expect(of("transition").filter((e) => e.cause).map((e) => e.cause!.depth)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
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
    expect((await op<any[]>("trigger.list", { all: true }))[0]).toMatchObject({ id: t.id, state: "fired", fired_count: 1 });
    expect((await op<Item[]>("items.list", { label: "prompt" })).map((i) => i.title)).toEqual(["review what started"]);
  });

  test("item and agent globs, labels, and events that arrived by sync", async () => {
    await op("trigger.add", { on: { event: "claimed", agent: "bot-*", labels: ["ui"] }, mode: "persistent", op: "items.list", args: {} });
    const ui = await op<Item>("item.create", { title: "ui", labels: ["ui", "web"] });
    const api = await op<Item>("item.create", { title: "api", labels: ["api"] });
    await op("item.claim", { id: ui.id, agent: "human-1" });
    await op("item.claim", { id: api.id, agent: "bot-1" });
    await settle();
    expect(of("trigger_fired")).toHaveLength(0);
    await op("item.release", { id: ui.id, agent: "human-1", fence: 1 });
    await op("item.claim", { id: ui.id, agent: "bot-7" });
    rt.ctx.bus.publish("claimed", { item_id: ui.id, agent_id: "bot-remote", fence: 9, expires_at: "x" }, { origin: "remote" });
    await settle();
    expect(of("trigger_fired").map((e) => e.item_id)).toEqual([ui.id, ui.id]);
  });

  test("actions are checked when the trigger is made; placeholders stand where a value will come", async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mode: "once", op: "item.move", args: { id: "$event.item_id", to: "somewhere" } }, /op "item.move": "to"/],
      [{ mode: "once", op: "nope" }, /no op named "nope"/],
      [{ mode: "sometimes", op: "items.list" }, /"mode"/],
      [{ on: { event: "no_such_event" }, mode: "once", op: "items.list" }, /"on.event"/],
      [{ on: { to: "heaven" }, mode: "once", op: "items.list" }, /"on.to"/],
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

import { describe, expect, test } from "bun:test";
import { createBus } from "../core/bus.ts";
import { manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import { createLogger } from "../core/logger.ts";

function bus(queueLimit?: number) {
  const lines: string[] = [];
  const log = createLogger("t", { level: "debug", write: (l) => lines.push(l) });
  return { bus: createBus({ clock: manualClock("2026-05-01T00:00:00Z"), log, queueLimit }), lines };
}

describe("bus", () => {
  test("publish() validates fields against the event's schema and stamps the envelope", () => {
    const { bus: b } = bus();
    const e = b.publish("assigned", { item_id: "abcde", agent_id: "a1" });
    expect(e).toEqual({
      type: "assigned",
      at: "2026-05-01T00:00:00.000Z",
      origin: "local",
      item_id: "abcde",
      agent_id: "a1",
    });
    expect(() => b.publish("assigned", { item_id: 5 } as never)).toThrow();
  });

  test("a throwing subscriber is logged and does not stop the others", async () => {
    const { bus: b, lines } = bus();
    const got: string[] = [];
    b.on(
      "assigned",
      () => {
        throw new Error("boom");
      },
      { name: "bad" },
    );
    b.on("assigned", (e) => void got.push((e as BusEvent<"assigned">).item_id), { name: "good" });
    b.publish("assigned", { item_id: "aaaaa", agent_id: "a" });
    b.publish("assigned", { item_id: "bbbbb", agent_id: "a" });
    await b.idle();
    expect(got).toEqual(["aaaaa", "bbbbb"]);
    expect(lines.filter((l) => l.includes('Subscriber "bad" failed'))).toHaveLength(2);
  });

  test("a lagging subscriber gets a gap with the count of dropped events, then continues in order", async () => {
    const { bus: b } = bus(3);
    const got: Array<string | number> = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    b.on("*", async (e) => {
      if (e.type === "gap") got.push(`gap:${(e as BusEvent<"gap">).dropped}`);
      else {
        await gate;
        got.push((e as BusEvent<"assigned">).item_id);
      }
    });
    for (const id of ["aaaaa", "bbbbb", "ccccc", "ddddd", "eeeee", "fffff"])
      b.publish("assigned", { item_id: id, agent_id: "a" });
    release();
    await b.idle();
    b.publish("assigned", { item_id: "ggggg", agent_id: "a" });
    await b.idle();
    // all six are published before delivery starts: three fit the queue, three are dropped
    expect(got).toEqual(["aaaaa", "bbbbb", "ccccc", "gap:3", "ggggg"]);
  });

  test("subscribers see only their type; '*' sees all; unsubscribe stops delivery", async () => {
    const { bus: b } = bus();
    const typed: string[] = [];
    const all: string[] = [];
    const off = b.on("claimed", (e) => void typed.push(e.type));
    b.on("*", (e) => void all.push(e.type));
    b.publish("assigned", { item_id: "aaaaa", agent_id: "a" });
    b.publish("claimed", { item_id: "aaaaa", agent_id: "a", fence: 1, expires_at: "x" });
    await b.idle();
    off();
    b.publish("claimed", { item_id: "aaaaa", agent_id: "a", fence: 2, expires_at: "x" });
    await b.idle();
    expect(typed).toEqual(["claimed"]);
    expect(all).toEqual(["assigned", "claimed", "claimed"]);
  });
});

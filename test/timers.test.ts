import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import { dueBetween, nextAfter } from "../features/timers/schedule.ts";
import type { Runtime } from "../runtime.ts";
import { refused, tempProject, testRuntime } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;

beforeEach(async () => {
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  clock = manualClock("2026-07-01T10:00:00Z");
  ({ rt, events } = await testRuntime(project.paths, { clock }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
/** Ticks every second for `seconds`, letting actions finish; returns the timer_fired events with their tick time. */
async function run(seconds: number): Promise<Array<BusEvent<"timer_fired"> & { tick: string }>> {
  const out: Array<BusEvent<"timer_fired"> & { tick: string }> = [];
  for (let i = 0; i < seconds; i++) {
    clock.advance(1000);
    const n = events.length;
    await rt.tick();
    await rt.ctx.services.actions.settle();
    await rt.ctx.bus.idle();
    for (const e of events.slice(n))
      if (e.type === "timer_fired")
        out.push({ ...(e as BusEvent<"timer_fired">), tick: new Date(clock.now()).toISOString() });
  }
  return out;
}

describe("schedules", () => {
  test("every is anchored; cron follows its time zone; due occurrences keep the latest when capped", () => {
    const every = { kind: "every" as const, every_ms: 600_000, anchor: 0 };
    expect(nextAfter(every, 0)).toBe(600_000);
    expect(nextAfter(every, 599_999)).toBe(600_000);
    const cron = { kind: "cron" as const, cron: "0 9 * * *", tz: "Europe/Paris" };
    expect(new Date(nextAfter(cron, Date.parse("2026-07-01T00:00:00Z"))!).toISOString()).toBe(
      "2026-07-01T07:00:00.000Z",
    );
    const { due, total } = dueBetween(every, 600_000, 600_000 * 150, 100);
    expect(total).toBe(150);
    expect(due).toHaveLength(100);
    expect(due.at(-1)).toBe(600_000 * 150);
  });
});

describe("timers", () => {
  test("one-shot, interval and cron timers fire at the right second", async () => {
    await op("timer.add", { label: "once", in: "5s", op: "item.create", args: { title: "from a timer" } });
    await op("timer.add", { label: "every", every: "3s", op: "items.list", args: {} });
    await op("timer.add", { label: "cron", cron: "* * * * *", op: "items.list", args: {} });
    const fired = await run(60);
    const at = (label: string) => fired.filter((f) => f.label === label).map((f) => f.due_at.slice(11, 19));
    expect(at("once")).toEqual(["10:00:05"]);
    expect(at("every")).toEqual(
      Array.from({ length: 20 }, (_, i) =>
        new Date(Date.parse("2026-07-01T10:00:03Z") + i * 3000).toISOString().slice(11, 19),
      ),
    );
    expect(at("cron")).toEqual(["10:01:00"]);
    expect(fired.every((f) => f.result === "ok" && f.late_ms === 0 && f.fired_at === f.tick)).toBe(true);
    expect((await op<any[]>("items.list", {})).map((i) => i.title)).toEqual(["from a timer"]);
  });

  test("after 3 hours of downtime: one fires 1, all fires each missed (capped at 100), skip fires none; then on schedule", async () => {
    await op("timer.add", { label: "one", every: "10m", catchup: "one", op: "items.list", args: {} });
    await op("timer.add", { label: "all", every: "10m", catchup: "all", op: "items.list", args: {} });
    await op("timer.add", { label: "skip", every: "10m", catchup: "skip", op: "items.list", args: {} });
    await op("timer.add", { label: "all-capped", every: "1m", catchup: "all", op: "items.list", args: {} });
    await op("timer.add", { label: "cron-all", cron: "*/5 * * * *", catchup: "all", op: "items.list", args: {} });
    clock.advance(3 * 3_600_000 + 30_000); // down: no ticks for 3 h 30 s
    const first = await run(1);
    const count = (label: string) => first.filter((f) => f.label === label).length;
    expect([count("one"), count("all"), count("skip"), count("all-capped"), count("cron-all")]).toEqual([
      1, 18, 0, 100, 36,
    ]);
    const later = await run(600);
    for (const label of ["one", "all", "skip"])
      expect(later.filter((f) => f.label === label).map((f) => f.late_ms)).toEqual([0]);
  });

  test("an overdue one-shot fires once at start", async () => {
    await op("timer.add", { label: "overdue", at: "2026-07-01T09:00:00Z", op: "items.list", args: {} });
    const fired = await run(5);
    expect(fired.map((f) => [f.label, f.late_ms])).toEqual([["overdue", 3_601_000]]);
    expect(await op<any[]>("timer.list", {})).toEqual([]);
    expect((await op<any[]>("timer.list", { all: true }))[0]).toMatchObject({ state: "done", fired_count: 1 });
  });

  test("bad input is refused when the timer is made, not when it fires", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ in: "5s", op: "no.such", args: {} }, /no op named "no.such"/],
      [{ in: "5s", op: "item.move", args: { id: "abcde", to: "nowhere" } }, /op "item.move": "to"/],
      [{ in: "soon", op: "items.list" }, /"in": "soon" is not a duration/],
      [{ every: "10s", in: "5s", op: "items.list" }, /exactly one of "at", "in", "every" or "cron"/],
      [{ cron: "61 * * * *", op: "items.list" }, /Invalid "cron"/],
      [{ cron: "* * * * *", tz: "Mars/Olympus", op: "items.list" }, /unknown time zone/],
      [{ in: "5s" }, /exactly one of "action", "op", "webhook" or "prompt"/],
      [{ in: "5s", webhook: "ftp://x" }, /http\(s\) URL/],
    ];
    for (const [input, message] of cases) {
      const err = await refused(op("timer.add", input));
      expect({ input, code: err.code }).toEqual({ input, code: "invalid_input" });
      expect(err.message).toMatch(message);
    }
    expect((await refused(op("timer.cancel", { id: "tmaaaaaaaa" }))).code).toBe("not_found");
  });

  test("a prompt action creates an item labelled prompt", async () => {
    await op("timer.add", { in: "1s", prompt: "Summarise the open issues\nin the README" });
    await run(2);
    expect((await op<any[]>("items.list", { label: "prompt" }))[0]).toMatchObject({
      title: "Summarise the open issues",
      body: "Summarise the open issues\nin the README",
    });
  });
});

describe("webhook actions", () => {
  let calls = 0;
  let mode: "flaky" | "hang" = "flaky";
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(req) {
        calls++;
        await req.text();
        if (mode === "hang") return new Promise<Response>(() => undefined);
        return calls <= 2 ? new Response("no", { status: 503 }) : new Response("ok");
      },
    });
  });
  afterAll(() => server.stop(true));

  test("a server that fails twice then succeeds: 3 calls, result ok", async () => {
    calls = 0;
    mode = "flaky";
    rt.ctx.services.actions.options.backoffMs = [50, 100];
    await op("timer.add", { label: "hook", in: "1s", webhook: `http://127.0.0.1:${server.port}/hook` });
    await run(1);
    expect(calls).toBe(3);
    expect(events.find((e) => e.type === "timer_fired")).toMatchObject({ label: "hook", result: "ok" });
  });

  test("a server that hangs: timeout, result error, and other timers keep firing on time meanwhile", async () => {
    calls = 0;
    mode = "hang";
    rt.ctx.services.actions.options = { timeoutMs: 300, backoffMs: [50, 50] };
    await op("timer.add", { label: "hangs", in: "1s", webhook: `http://127.0.0.1:${server.port}/hook` });
    await op("timer.add", { label: "steady", every: "1s", op: "items.list", args: {} });
    // tick by hand, without waiting for the hanging action: the ticker must not wait for it either
    const steady: number[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      const n = events.length;
      await rt.tick();
      const started = Date.now();
      while (
        !events.slice(n).some((e) => e.type === "timer_fired" && (e as BusEvent<"timer_fired">).label === "steady") &&
        Date.now() - started < 1000
      )
        await Bun.sleep(5);
      steady.push(
        ...events
          .slice(n)
          .filter((e) => e.type === "timer_fired" && (e as BusEvent<"timer_fired">).label === "steady")
          .map((e) => (e as BusEvent<"timer_fired">).late_ms),
      );
    }
    expect(steady).toEqual([0, 0, 0]);
    await rt.ctx.services.actions.settle();
    await rt.ctx.bus.idle();
    const hung = events.find(
      (e) => e.type === "timer_fired" && (e as BusEvent<"timer_fired">).label === "hangs",
    ) as BusEvent<"timer_fired">;
    expect(hung).toMatchObject({ result: "error" });
    expect(hung.error).toContain("timed out after 300 ms");
    expect(calls).toBe(3);
  });
});

/**
 * Webhook actions at the trust boundary: headers checked when the timer or trigger is made, redirects followed
 * by hand and never to another origin with custom headers, and at most 64 KiB of an answer read.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
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
  rt.ctx.services.actions.options = { timeoutMs: 2000, backoffMs: [20, 20] };
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;

/** Runs a webhook action through a one-shot timer; the timer_fired event it ends with. */
async function fire(webhook: Record<string, unknown>): Promise<BusEvent<"timer_fired">> {
  await op("timer.add", { in: "1s", action: { webhook } });
  clock.advance(1000);
  await rt.tick();
  await rt.ctx.services.actions.settle();
  await rt.ctx.bus.idle();
  return events.findLast((e) => e.type === "timer_fired") as BusEvent<"timer_fired">;
}

/** Two servers on 127.0.0.1, so two origins; each records what reached it. */
interface Seen {
  path: string;
  method: string;
  secret: string | null;
}
const seen: Record<"a" | "b", Seen[]> = { a: [], b: [] };
let a: ReturnType<typeof Bun.serve>;
let b: ReturnType<typeof Bun.serve>;
let streamed = 0;
let streamCancelled = false;

beforeAll(() => {
  b = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      seen.b.push({ path: new URL(req.url).pathname, method: req.method, secret: req.headers.get("x-secret") });
      return new Response("b");
    },
  });
  a = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      seen.a.push({ path, method: req.method, secret: req.headers.get("x-secret") });
      await req.text();
      const to = (location: string, status = 302) => new Response(null, { status, headers: { location } });
      if (path === "/to-b") return to(`http://127.0.0.1:${b.port}/landed`);
      if (path === "/to-self") return to("/landed", 307);
      if (path === "/see-other") return to("/landed", 303);
      if (path === "/loop") return to("/loop");
      if (path === "/to-file") return to("file:///etc/passwd");
      if (path === "/endless") {
        // answers 200 and never stops sending: only what drover reads may arrive
        return new Response(
          new ReadableStream({
            async pull(c) {
              c.enqueue(new Uint8Array(16 * 1024));
              streamed += 16 * 1024;
              await Bun.sleep(1);
            },
            cancel() {
              streamCancelled = true;
            },
          }),
        );
      }
      return new Response("a");
    },
  });
});
afterAll(() => {
  a.stop(true);
  b.stop(true);
});
beforeEach(() => {
  seen.a = [];
  seen.b = [];
});

describe("webhook headers are checked when the timer or trigger is made", () => {
  const url = () => `http://127.0.0.1:${a.port}/hook`;
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ "x-a": "one\r\nx-injected: two" }, /header "x-a" has a value with CR, LF, NUL/],
    [{ "x-a": "one\ntwo" }, /CR, LF, NUL/],
    [{ "x-a": "one\rtwo" }, /CR, LF, NUL/],
    [{ "x-a": "nul\u0000" }, /CR, LF, NUL/],
    [{ "x-a": "wide ☃" }, /printable ASCII only/],
    [{ "x a": "v" }, /header "x a" is not a header name/],
    [{ "x-a\r\nx-b": "v" }, /is not a header name/],
    [{ "": "v" }, /is not a header name/],
    [{ Host: "evil.example" }, /header "Host" is set by drover itself/],
    [{ "transfer-encoding": "chunked" }, /is set by drover itself/],
    [{ "X-A": "1", "x-a": "2" }, /header "x-a" is given twice/],
    [Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`x-h${i}`, "v"])), /has 33 headers: at most 32/],
    [{ "x-a": "v".repeat(5000), "x-b": "v".repeat(5000) }, /bytes of headers: at most 8192/],
  ];

  test("timer.add and trigger.add refuse a bad header and store nothing", async () => {
    for (const [headers, message] of bad) {
      const webhook = { url: url(), headers };
      expect((await refused(op("timer.add", { in: "1m", action: { webhook } }))).message).toMatch(message);
      expect((await refused(op("trigger.add", { mode: "persistent", action: { webhook } }))).message).toMatch(message);
    }
    expect(await op<unknown[]>("timer.list", { all: true })).toEqual([]);
    expect(await op<unknown[]>("trigger.list", { all: true })).toEqual([]);
  });

  test("good headers are kept and sent", async () => {
    const headers = { "X-Secret": "s3cr3t\tvalue", Authorization: "Bearer abc.def", "x-~!#$%&'*+.^_`|": "ok" };
    const fired = await fire({ url: url(), headers });
    expect(fired).toMatchObject({ result: "ok" });
    expect(seen.a).toEqual([{ path: "/hook", method: "POST", secret: "s3cr3t\tvalue" }]);
  });
});

describe("webhook redirects", () => {
  const secret = { "x-secret": "s3cr3t" };

  test("to another origin with custom headers: not followed, an error saying so, nothing reaches the other origin", async () => {
    const fired = await fire({ url: `http://127.0.0.1:${a.port}/to-b`, headers: secret });
    expect(fired.result).toBe("error");
    expect(fired.error).toContain(
      `was redirected to another origin "http://127.0.0.1:${b.port}": not followed, as the hook sends custom headers`,
    );
    expect(seen.a).toHaveLength(1); // a refusal is not retried
    expect(seen.b).toEqual([]);
  });

  test("within the origin with custom headers: followed, headers and method kept on 307", async () => {
    const fired = await fire({ url: `http://127.0.0.1:${a.port}/to-self`, headers: secret });
    expect(fired).toMatchObject({ result: "ok" });
    expect(seen.a).toEqual([
      { path: "/to-self", method: "POST", secret: "s3cr3t" },
      { path: "/landed", method: "POST", secret: "s3cr3t" },
    ]);
  });

  test("to another origin without custom headers: followed; 302 and 303 turn a POST into a GET", async () => {
    expect(await fire({ url: `http://127.0.0.1:${a.port}/to-b` })).toMatchObject({ result: "ok" });
    expect(seen.b).toEqual([{ path: "/landed", method: "GET", secret: null }]);
    expect(await fire({ url: `http://127.0.0.1:${a.port}/see-other`, headers: secret })).toMatchObject({
      result: "ok",
    });
    expect(seen.a.at(-1)).toEqual({ path: "/landed", method: "GET", secret: "s3cr3t" });
  });

  test("a redirect loop stops after 3 redirects; a redirect to a non-http URL is refused", async () => {
    const loop = await fire({ url: `http://127.0.0.1:${a.port}/loop` });
    expect(loop.error).toContain("was redirected more than 3 times");
    expect(seen.a).toHaveLength(4);
    const file = await fire({ url: `http://127.0.0.1:${a.port}/to-file` });
    expect(file.error).toContain('was redirected to "file:///etc/passwd", not an http(s) URL');
  });
});

describe("webhook answers", () => {
  test("an endless answer: 64 KiB is read, the rest cancelled; the result is ok and memory stays bounded", async () => {
    streamed = 0;
    streamCancelled = false;
    const fired = await fire({ url: `http://127.0.0.1:${a.port}/endless` });
    expect(fired).toMatchObject({ result: "ok" });
    await Bun.sleep(500);
    expect(streamCancelled).toBe(true);
    // what the server could push before the cancel arrived: far below what half a second of streaming would be
    expect(streamed).toBeLessThan(1024 * 1024);
  });
});

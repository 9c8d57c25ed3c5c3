/**
 * The socket surfaces of the trust boundary (SPEC §12) with real processes: a daemon and a gateway started from
 * source. First the defects found (each failed on the code before the fix), then generated hostile frames on
 * every socket — the daemon's `/ws`, the gateway's `/ws` and `/relay` before and after the hello — and generated
 * `gateway.toml` values. Each case ends with the process alive and answering `/health` within 100 ms, another
 * client still getting its events, RSS bounded, and the gateway's stored view unchanged unless the input was valid.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { allFeatures } from "../runtime.ts";
import { declaredEvents } from "./contract.ts";
import {
  api,
  BUN,
  CLI,
  cli,
  type DaemonProc,
  hostileRuns,
  startDaemonProcess,
  tempProject,
  testRuntime,
  until,
  upgrade,
  waitHealthy,
  wsClient,
} from "./helpers.ts";

const READER = "reader-token-0123456789";
const TOKENS = {
  alpha: "alpha-token-0123456789",
  beta: "beta-token-0123456789",
  gamma: "gamma-token-0123456789",
  delta: "delta-token-0123456789",
};
const GATEWAY_TOML = `token = "${READER}"\n${Object.entries(TOKENS)
  .map(([name, token]) => `\n[[project]]\nname = "${name}"\ntoken = "${token}"\n`)
  .join("")}`;
/** Growth of a process's RSS that no hostile input may cause. */
const RSS_BOUND_MB = 150;

let dir: string;
let gw: GatewayProc;
let daemonProject: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
let daemonObserver: Awaited<ReturnType<typeof wsClient>>;
let gatewayReader: Awaited<ReturnType<typeof wsClient>>;
let observerRelay: Recorded;
let baseline: { daemon: number; gateway: number };
let seen = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "drover-sockets-"));
  gw = await startGateway(join(dir, "gateway.toml"), GATEWAY_TOML);
  daemonProject = await tempProject({
    config: `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[server]\nallowed_hosts = ["drover.test"]\n`,
  });
  daemon = await startDaemonProcess([BUN, CLI], daemonProject.paths);
  daemonObserver = await wsClient(daemon.url, daemon.token);
  gatewayReader = await wsClient(gw.url, READER);
  observerRelay = await relay("alpha", "observer");
  baseline = { daemon: rssMb(daemon.pid), gateway: rssMb(gw.pid) };
}, 60_000);
afterAll(async () => {
  for (const ws of [daemonObserver?.ws, gatewayReader?.ws, observerRelay?.ws]) ws?.close();
  await daemon?.stop();
  gw?.proc.kill("SIGKILL");
  daemonProject?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("the defects", () => {
  test("daemon /ws: null, any non-object JSON and binary frames are answered with an error frame; a huge frame closes that socket; the daemon lives", async () => {
    const hostile = await recorded(daemon.url.replace("http", "ws") + "/ws", {
      authorization: `Bearer ${daemon.token}`,
    });
    for (const frame of ["null", "42", '"x"', "[]", "true", '{"type":null}', '{"type":"subscribe","topics":null}'])
      hostile.ws.send(frame);
    hostile.ws.send(new Uint8Array([1, 2, 3]));
    const errors = () => hostile.frames.filter((f) => f.type === "error");
    await until(() => errors().length >= 8, 5000);
    expect(errors()).toHaveLength(8);
    expect(errors()[0]).toMatchObject({ type: "error", message: "Invalid message: expected a JSON object" });
    expect(errors()[7]).toMatchObject({ type: "error", message: "Invalid message: expected a text frame with JSON" });
    hostile.ws.send("x".repeat(1024 * 1024));
    expect((await hostile.closed).code).toBe(1009);
    await daemonAlive();
  });

  test("gateway: a relay snapshot with agents [null] and a reader's frame null are dropped or answered; every project goes on", async () => {
    const before = await gatewayView();
    const intruder = await relay("gamma", "intruder");
    intruder.ws.send(JSON.stringify({ type: "snapshot", at: new Date().toISOString(), agents: [null], items: [] }));
    await barrier(intruder, "gamma");
    const reader = await recorded(gw.url.replace("http", "ws") + "/ws", { authorization: `Bearer ${READER}` });
    reader.ws.send("null");
    await until(() => reader.frames.some((f) => f.type === "error"), 5000);
    expect(normal(await gatewayView(), { machines: false })).toEqual(normal(before, { machines: false }));
    intruder.ws.close();
    reader.ws.close();
    await gatewayAlive();
  });

  test("a gateway that stops reading: the relay's memory stays bounded, relay.status tells the truth, and once it drains a fresh snapshot follows", async () => {
    const proxy = await stallableProxy(gw.port);
    const project = await tempProject({
      config: `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[gateway]\nurl = "http://127.0.0.1:${proxy.port}"\nproject = "beta"\ntoken = "${TOKENS.beta}"\n`,
      trusted: true,
    });
    const { rt } = await testRuntime(project.paths);
    const status = async () => (await rt.ops.run("relay.status", {}, { via: "internal" })) as Record<string, any>;
    try {
      await rt.start();
      await until(async () => (await status()).connected === true, 5000);
      proxy.stall();
      Bun.gc(true);
      const before = process.memoryUsage.rss();
      const big = "y".repeat(64 * 1024);
      for (let i = 0; i < 3000; i++) {
        rt.ctx.bus.publish("reconciled", { feature: "test", report: { big, i } });
        if (i % 50 === 49) {
          await rt.ctx.bus.idle();
          Bun.gc(true);
        }
      }
      await rt.ctx.bus.idle();
      Bun.gc(true);
      const grownMb = (process.memoryUsage.rss() - before) / 2 ** 20;
      expect(grownMb).toBeLessThan(64);
      const held = await status();
      expect(held).toMatchObject({ connected: true, paused: true });
      expect(held.dropped).toBeGreaterThan(2000);
      expect(held.buffered_bytes).toBeLessThan(4 * 2 ** 20);

      const made = (await rt.ops.run(
        "item.create",
        { title: "made while the gateway was not reading" },
        { via: "internal" },
      )) as { id: string };
      proxy.resume();
      await until(
        async () =>
          (await api(gw.url, READER, "/api/projects/beta/items")).body.some((i: { id: string }) => i.id === made.id),
        15_000,
      );
      await until(async () => (await status()).buffered_bytes === 0, 5000);
      expect(await status()).toMatchObject({ connected: true, paused: false, queued: 0, last_error: null });
    } finally {
      await rt.close();
      proxy.close();
      project.cleanup();
    }
    await gatewayAlive();
  }, 60_000);

  test("a relay whose project or token cannot travel in a header says so in relay.status; the daemon goes on", async () => {
    const project = await tempProject({
      config: `[hub]\nremote = ""\n[gateway]\nurl = "${gw.url}"\nproject = "beta"\ntoken = "jeton ✓ 0123456789"\n`,
      trusted: true,
    });
    const { rt } = await testRuntime(project.paths);
    try {
      await rt.start();
      expect(await rt.ops.run("relay.status", {}, { via: "internal" })).toMatchObject({
        connected: false,
        last_error: expect.stringContaining("check gateway.url, gateway.project and gateway.token"),
      });
      expect(await rt.ops.run("item.create", { title: "still working" }, { via: "internal" })).toMatchObject({
        title: "still working",
      });
    } finally {
      await rt.close();
      project.cleanup();
    }
  });

  test("320 items with 60 KB bodies: the snapshot carries no bodies and the gateway shows every item", async () => {
    const project = await tempProject({ config: `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n` });
    let d = await startDaemonProcess([BUN, CLI], project.paths);
    try {
      const body = "b".repeat(60 * 1024);
      for (let i = 0; i < 320; i += 16) {
        await Promise.all(
          Array.from({ length: 16 }, (_, j) => api(d.url, d.token, "/api/items", { title: `heavy ${i + j}`, body })),
        );
      }
      await d.stop();
      appendFileSync(
        project.paths.config,
        `[gateway]\nurl = "${gw.url}"\nproject = "delta"\ntoken = "${TOKENS.delta}"\n`,
      );
      expect((await cli(["trust", "--yes"], project.dir)).code).toBe(0);
      d = await startDaemonProcess([BUN, CLI], project.paths);
      await until(async () => (await api(gw.url, READER, "/api/projects/delta/items")).body.length === 320, 15_000);
      const items = (await api(gw.url, READER, "/api/projects/delta/items")).body as Array<Record<string, unknown>>;
      expect(items.filter((i) => "body" in i)).toEqual([]);
      const relay = (await api(d.url, d.token, "/api/ops/relay.status", {})).body;
      expect(relay).toMatchObject({ connected: true, last_snapshot: { items: 320, items_left_out: 0 } });
    } finally {
      await d.stop();
      project.cleanup();
    }
  }, 60_000);

  test("/relay checks the token at the upgrade: 30 unauthenticated sockets with 16 MiB frames open nothing and cost no memory", async () => {
    const before = rssMb(gw.pid);
    const attempts = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const headers: Record<string, string> =
          i % 3 === 0
            ? {}
            : i % 3 === 1
              ? { "x-drover-project": "alpha" }
              : { "x-drover-project": "alpha", authorization: "Bearer wrong-wrong-wrong-wrong" };
        const ws = new WebSocket(gw.url.replace("http", "ws") + "/relay", { headers } as never);
        const opened = await new Promise<boolean>((r) => {
          ws.onopen = () => r(true);
          ws.onerror = () => r(false);
        });
        if (opened) ws.send("x".repeat(16 * 1024 * 1024 - 64));
        return { ws, opened };
      }),
    );
    await Bun.sleep(500);
    expect(rssMb(gw.pid) - before).toBeLessThan(100);
    for (const a of attempts) a.ws.close();
    expect(attempts.filter((a) => a.opened)).toHaveLength(0);
    const refused = await upgrade(gw.url + "/relay", { "x-drover-project": "alpha" });
    expect({ status: refused.status, body: await refused.json() }).toEqual({
      status: 401,
      body: { error: { code: "unauthorized", message: 'Wrong token for project "alpha"' } },
    });
    await gatewayAlive();
  }, 60_000);

  test("a request whose Host is not the server's own name is refused with 403, /health and /ws included", async () => {
    for (const [base, token, extra] of [
      [daemon.url, daemon.token, "drover.test"],
      [gw.url, READER, null],
    ] as const) {
      for (const host of ["evil.example", "evil.example:80", `rebind.attacker.test:${new URL(base).port}`]) {
        const health = await fetch(base + "/health", { headers: { host } });
        expect({ host, status: health.status, body: await health.json() }).toMatchObject({
          host,
          status: 403,
          body: { error: { code: "forbidden" } },
        });
        const ws = await upgrade(base + "/ws", { host, authorization: `Bearer ${token}` });
        expect({ host, status: ws.status }).toEqual({ host, status: 403 });
      }
      const port = new URL(base).port;
      for (const host of [
        `localhost:${port}`,
        "localhost",
        `127.0.0.1:${port}`,
        `[::1]:${port}`,
        ...(extra ? [extra, `${extra.toUpperCase()}:${port}`] : []),
      ]) {
        expect({ host, status: (await fetch(base + "/health", { headers: { host } })).status }).toEqual({
          host,
          status: 200,
        });
      }
    }
    const relayed = await upgrade(gw.url + "/relay", {
      host: "evil.example",
      authorization: `Bearer ${TOKENS.alpha}`,
      "x-drover-project": "alpha",
    });
    expect(relayed.status).toBe(403);
  });
});

describe("generated hostile frames", () => {
  const known = [...new Set(Object.values(declaredEvents(allFeatures)).map((e) => e.topic))];
  const protoJson = fc.constantFrom(
    '{"__proto__":{"type":"subscribe"}}',
    '{"type":"subscribe","__proto__":{"topics":["nope"]}}',
    '{"type":"subscribe","topics":["__proto__"]}',
    '{"constructor":{"prototype":{"polluted":true}},"type":"subscribe"}',
  );
  const clientText = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 100 }),
    fc.string({ unit: "binary", maxLength: 100 }),
    fc.constantFrom("", "{", "null", "[".repeat(2000), '{"type":"subscribe"', "\u0000"),
    fc
      .record(
        {
          type: fc.oneof(fc.constant("subscribe"), fc.string(), fc.jsonValue()),
          topics: fc.oneof(fc.array(fc.oneof(fc.constantFrom(...known), fc.string())), fc.jsonValue()),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
    protoJson,
  );
  const clientFrame: fc.Arbitrary<Frame> = fc.oneof(
    { weight: 8, arbitrary: clientText.map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })) },
    { weight: 1, arbitrary: clientText.map((text) => ({ bytes: new TextEncoder().encode(text) })) },
    { weight: 1, arbitrary: fc.integer({ min: 4097, max: 4 * 1024 * 1024 }).map((n) => ({ text: "x".repeat(n) })) },
  );
  /** A burst: frames one after another, each maybe repeated (many per second). */
  const burst = fc.array(fc.tuple(clientFrame, fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 200 }))), {
    minLength: 1,
    maxLength: 20,
  });

  /** What the server must answer a client frame: subscribed, error, or a close (1009) for one over 4 KiB. */
  function answer(frame: Frame): "subscribed" | "error" | "close" {
    if (size(frame) > 4096) return "close";
    if (frame.text === undefined) return "error";
    let v: any;
    try {
      v = JSON.parse(frame.text);
    } catch {
      return "error";
    }
    if (!v || typeof v !== "object" || Array.isArray(v) || v.type !== "subscribe") return "error";
    if (v.topics === undefined) return "subscribed";
    return Array.isArray(v.topics) &&
      v.topics.length <= 64 &&
      v.topics.every((t: unknown) => known.includes(t as string))
      ? "subscribed"
      : "error";
  }

  test("the topics the frames are judged by are the daemon's: subscribing to all of them is answered", async () => {
    const client = await recorded(daemon.url.replace("http", "ws") + "/ws", {
      authorization: `Bearer ${daemon.token}`,
    });
    client.ws.send(JSON.stringify({ type: "subscribe", topics: known }));
    await until(() => client.frames.length > 0, 5000);
    expect(client.frames[0]).toMatchObject({ type: "subscribed", topics: known });
    client.ws.close();
  });

  /** Sends the burst on a fresh client socket; every frame is answered in order, seq counting from 1, until a close. */
  async function clientBurst(url: string, token: string, frames: Array<[Frame, number]>) {
    const hostile = await recorded(url.replace("http", "ws") + "/ws", { authorization: `Bearer ${token}` });
    const expected: string[] = [];
    let closes = false;
    for (const [frame, times] of frames) {
      for (let i = 0; i < times && !closes; i++) {
        hostile.ws.send(frame.bytes ?? frame.text!);
        const a = answer(frame);
        if (a === "close") closes = true;
        else expected.push(a);
      }
    }
    const answers = () =>
      hostile.frames.filter((f) => f.type === "error" || f.type === "subscribed").map((f) => f.type);
    if (closes) expect((await hostile.closed).code).toBe(1009);
    else await until(() => answers().length >= expected.length, 10_000);
    expect(answers()).toEqual(expected);
    expect(hostile.frames.map((f) => f.seq)).toEqual(hostile.frames.map((_, i) => i + 1));
    hostile.ws.close();
  }

  test("daemon /ws: any frame, text or binary, broken, huge, in bursts", async () => {
    await fc.assert(
      fc.asyncProperty(burst, async (frames) => {
        await clientBurst(daemon.url, daemon.token, frames);
        await daemonAlive();
      }),
      { numRuns: hostileRuns(30) },
    );
  }, 300_000);

  test("gateway /ws: readers' frames, the same generators; the stored view is unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(burst, async (frames) => {
        const before = normal(await gatewayView());
        await clientBurst(gw.url, READER, frames);
        expect(normal(await gatewayView())).toEqual(before);
        await gatewayAlive();
      }),
      { numRuns: hostileRuns(30) },
    );
  }, 300_000);

  const nasty = fc.oneof(
    fc.constantFrom(null, -1, 0, 1e308, true, "", [], {}, "x".repeat(300), "2026-13-45T99:99:99Z", "__proto__"),
    fc.string({ maxLength: 40 }),
    fc.integer(),
    fc.jsonValue({ maxDepth: 3 }),
    fc.integer({ min: 1001, max: 200_000 }).map((n) => Array(n).fill(null)),
  );

  test("gateway /relay before the hello: only a hello naming the upgrade's project opens the relay", async () => {
    const helloish = fc.record(
      {
        type: fc.oneof(fc.constant("hello"), nasty),
        project: fc.oneof(fc.constant("gamma"), fc.constantFrom("alpha", "Gamma", "gamma "), nasty),
        machine_id: fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,20}$/), nasty, fc.constant("m".repeat(129))),
        version: fc.oneof(fc.constant("1.0"), nasty),
      },
      { requiredKeys: [] },
    );
    const first: fc.Arbitrary<Frame> = fc.oneof(
      { weight: 6, arbitrary: helloish.map((h) => ({ text: JSON.stringify(h) })) },
      { weight: 2, arbitrary: clientText.map((text) => ({ text })) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })) },
      {
        weight: 1,
        arbitrary: fc.integer({ min: 2 * 2 ** 20 + 1, max: 4 * 2 ** 20 }).map((n) => ({ text: "x".repeat(n) })),
      },
    );
    await fc.assert(
      fc.asyncProperty(first, async (frame) => {
        const before = normal(await gatewayView());
        const hostile = await recorded(gw.url.replace("http", "ws") + "/relay", {
          authorization: `Bearer ${TOKENS.gamma}`,
          "x-drover-project": "gamma",
        });
        hostile.ws.send(frame.bytes ?? frame.text!);
        const hello = _validHello(frame);
        if (hello) {
          await until(
            async () =>
              (await gatewayView())
                .find((p) => p.name === "gamma")!
                .machines.some((m: any) => m.machine_id === hello && m.connected),
            5000,
          );
          const after = normal(await gatewayView());
          expect(after.map((p) => ({ ...p, machines: [] }))).toEqual(before.map((p) => ({ ...p, machines: [] })));
          hostile.ws.close();
        } else {
          expect((await hostile.closed).code).toBe(size(frame) > 2 * 2 ** 20 ? 1009 : 4400);
          expect(normal(await gatewayView())).toEqual(before);
        }
        await gatewayAlive();
      }),
      { numRuns: hostileRuns(30) },
    );
  }, 300_000);

  test("gateway /relay after the hello: hostile snapshots and events are dropped; valid ones, and only they, change the view", async () => {
    let hostile = await relay("gamma", "hostile-m");
    await fc.assert(
      fc.asyncProperty(_relayCase(nasty), async (c) => {
        if (hostile.ws.readyState !== WebSocket.OPEN) hostile = await relay("gamma", "hostile-m");
        const before = normal(await gatewayView());
        const text = c.text();
        hostile.ws.send(text);
        if (Buffer.byteLength(text) > 2 * 2 ** 20) {
          expect((await hostile.closed).code).toBe(1009);
          expect(normal(await gatewayView(), { machines: false })).toEqual(normal(before, { machines: false }));
        } else {
          await barrier(hostile, "gamma");
          expect(normal(await gatewayView())).toEqual(c.expect(before));
        }
        expect(JSON.stringify(await gatewayView())).not.toContain("polluted");
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        await gatewayAlive();
      }),
      { numRuns: hostileRuns(40) },
    );
    hostile.ws.close();
  }, 300_000);

  test("gateway.toml: any string where a string goes serves, or exits 2 with one readable line", async () => {
    const anyString = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.constantFrom(
        "",
        "-x",
        "a b c d e f g h i j",
        "0123456789abcdef",
        "gateway.test",
        "0.0.0.0",
        "[::1]",
        "x".repeat(2000),
        '"',
        "\\",
        "\n",
      ),
      fc.stringMatching(/^[!-~]{16,40}$/),
      fc.stringMatching(/^[a-z][a-z0-9.-]{0,30}$/),
    );
    const toml = fc.record({
      token: anyString,
      projects: fc.array(fc.tuple(anyString, anyString), { maxLength: 3 }),
      hosts: fc.option(fc.array(anyString, { maxLength: 3 })),
      raw: fc.boolean(),
    });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(toml, async (t) => {
        const q = (s: string) => (t.raw ? `"${s}"` : _tomlString(s));
        const file = join(dir, `fuzz-${n++}.toml`);
        writeFileSync(
          file,
          `token = ${q(t.token)}\n${t.hosts ? `allowed_hosts = [${t.hosts.map(q).join(", ")}]\n` : ""}` +
            t.projects.map(([name, token]) => `\n[[project]]\nname = ${q(name)}\ntoken = ${q(token)}\n`).join(""),
        );
        const outcome = await _gatewayOutcome(file);
        if (outcome.url) {
          expect((await fetch(outcome.url + "/health")).status).toBe(200);
          for (const host of t.hosts ?? []) {
            if (/^[a-z0-9.-]+$/i.test(host))
              expect((await fetch(outcome.url + "/health", { headers: { host } })).status).toBe(200);
          }
          expect((await fetch(outcome.url + "/health", { headers: { host: "evil.example" } })).status).toBe(403);
          outcome.stop();
        } else {
          expect({ code: outcome.code, lines: outcome.stderr.trimEnd().split("\n").length }).toEqual({
            code: 2,
            lines: 1,
          });
          expect(outcome.stderr).toMatch(/^drover: [^\x00-\x1f\x7f]+\n$/);
        }
      }),
      { numRuns: hostileRuns(10) },
    );
  }, 300_000);
});

// --- helpers ---

type Frame = { text?: string; bytes?: Uint8Array<ArrayBuffer> };
type Recorded = Awaited<ReturnType<typeof recorded>>;
type GatewayProc = { proc: ReturnType<typeof Bun.spawn>; url: string; port: number; pid: number };

function size(frame: Frame): number {
  return frame.bytes ? frame.bytes.byteLength : Buffer.byteLength(frame.text!);
}

async function startGateway(file: string, toml: string): Promise<GatewayProc> {
  writeFileSync(file, toml);
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  const proc = Bun.spawn([BUN, CLI, "gateway", "--config", file, "--port", String(port)], {
    stdout: "ignore",
    stderr: "inherit",
    env: { ...process.env },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, () => proc.exitCode === null);
  return { proc, url, port, pid: proc.pid };
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

/** A WebSocket that records its JSON frames and its close. */
async function recorded(url: string, headers: Record<string, string>) {
  const ws = new WebSocket(url, { headers } as never);
  const frames: Array<Record<string, any>> = [];
  ws.onmessage = (m) => void frames.push(JSON.parse(String(m.data)));
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.addEventListener("close", (e) => r({ code: e.code, reason: e.reason })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`Cannot open ${url}`));
  });
  return { ws, frames, closed };
}

/** A relay as a daemon opens it: project and token at the upgrade, then the hello. */
async function relay(project: keyof typeof TOKENS, machine: string): Promise<Recorded> {
  const r = await recorded(gw.url.replace("http", "ws") + "/relay", {
    authorization: `Bearer ${TOKENS[project]}`,
    "x-drover-project": project,
  });
  r.ws.send(JSON.stringify({ type: "hello", project, machine_id: machine, version: "test" }));
  return r;
}

function heartbeat(agent: string, machine: string): string {
  const at = new Date().toISOString();
  return JSON.stringify({
    type: "event",
    event: {
      type: "heartbeat",
      at,
      origin: "local",
      agent_id: agent,
      machine_id: machine,
      last_heartbeat: at,
      active_item_id: null,
      state: "idle",
      clock_skew: false,
    },
  });
}

/** Waits until every frame sent on the relay before has been handled: a marker heartbeat sent after it shows. */
async function barrier(r: Recorded, project: string) {
  const marker = `marker-${++seen}`;
  r.ws.send(heartbeat(marker, "marker"));
  await until(
    async () =>
      (await api(gw.url, READER, `/api/projects/${project}/agents`)).body.some(
        (a: { agent_id: string }) => a.agent_id === marker,
      ),
    5000,
  );
  r.ws.send(gone(marker));
}

/** Removes a test's own agent again, so that long runs stay under the gateway's agents per machine. */
function gone(agent: string): string {
  return JSON.stringify({
    type: "event",
    event: { type: "agent_gone", at: new Date().toISOString(), agent_id: agent },
  });
}

/** Every project's machines, agents and items as the gateway's API gives them. */
async function gatewayView(): Promise<Array<Record<string, any>>> {
  const projects = (await api(gw.url, READER, "/api/projects")).body as Array<Record<string, any>>;
  return Promise.all(
    projects.map(async (p) => ({
      name: p.name,
      machines: p.machines,
      agents: (await api(gw.url, READER, `/api/projects/${p.name}/agents`)).body,
      items: (await api(gw.url, READER, `/api/projects/${p.name}/items`)).body,
    })),
  );
}

/** The view without what time and the test's own markers change: last_seen, marker agents (and machines, on request). */
function normal(view: Array<Record<string, any>>, options: { machines?: boolean } = {}) {
  return view.map((p) => ({
    name: p.name,
    machines: options.machines === false ? [] : p.machines.map((m: any) => m.machine_id).sort(),
    agents: p.agents
      .filter((a: any) => !a.agent_id.startsWith("marker-"))
      .sort((a: any, b: any) => a.agent_id.localeCompare(b.agent_id)),
    items: [...p.items].sort((a: any, b: any) => a.id.localeCompare(b.id)),
  }));
}

async function answersHealth(url: string) {
  const started = performance.now();
  const res = await fetch(url + "/health");
  expect(res.status).toBe(200);
  expect(performance.now() - started).toBeLessThan(100);
}

/** The daemon answers /health within 100 ms, another client still gets its events, and its RSS stays bounded. */
async function daemonAlive() {
  await answersHealth(daemon.url);
  const agent = `watcher-${++seen}`;
  await api(daemon.url, daemon.token, `/api/agents/${agent}/heartbeat`, {});
  await daemonObserver.waitFor((f) => f.type === "heartbeat" && f.agent_id === agent);
  expect(rssMb(daemon.pid) - baseline.daemon).toBeLessThan(RSS_BOUND_MB);
}

/** The gateway answers /health within 100 ms, a reader still gets another project's events, and its RSS stays bounded. */
async function gatewayAlive() {
  await answersHealth(gw.url);
  const agent = `watcher-${++seen}`;
  observerRelay.ws.send(heartbeat(agent, "observer"));
  await gatewayReader.waitFor((f) => f.type === "heartbeat" && f.agent_id === agent && f.project === "alpha");
  observerRelay.ws.send(gone(agent));
  expect(rssMb(gw.pid) - baseline.gateway).toBeLessThan(RSS_BOUND_MB);
}

/** A TCP proxy to the gateway that can stop reading from its clients, as a gateway that stops reading would. */
async function stallableProxy(target: number) {
  let stalled = false;
  const clients = new Set<Socket>();
  const server: NetServer = createServer((client) => {
    const up = connect(target, "127.0.0.1");
    clients.add(client);
    client.on("data", (d) => void (up.write(d) || client.pause()));
    up.on("drain", () => void (stalled || client.resume()));
    up.on("data", (d) => void client.write(d));
    const end = () => {
      clients.delete(client);
      client.destroy();
      up.destroy();
    };
    for (const s of [client, up]) s.on("close", end).on("error", end);
    if (stalled) client.pause();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as { port: number }).port,
    stall() {
      stalled = true;
      for (const c of clients) c.pause();
    },
    resume() {
      stalled = false;
      for (const c of clients) c.resume();
    },
    close() {
      for (const c of clients) c.destroy();
      server.close();
    },
  };
}

// --- generators and oracles ---

/** The machine id of a hello that must open the relay for project "gamma", or null. */
function _validHello(frame: Frame): string | null {
  if (frame.text === undefined || size(frame) > 2 * 2 ** 20) return null;
  let v: any;
  try {
    v = JSON.parse(frame.text);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object" || v.type !== "hello" || v.project !== "gamma") return null;
  const str = (x: unknown, min: number, max: number) => typeof x === "string" && x.length >= min && x.length <= max;
  return str(v.machine_id, 1, 128) && str(v.version, 0, 64) ? v.machine_id : null;
}

type View = ReturnType<typeof normal>;
interface RelayCase {
  /** The frame's text, made when sent (its times are then current). */
  text(): string;
  /** The normal view after it, given the one before. */
  expect(before: View): View;
}

/** After the hello: valid snapshots and events (changing the view as they must), the same with one field made hostile, and junk. */
function _relayCase(nasty: fc.Arbitrary<unknown>): fc.Arbitrary<RelayCase> {
  const time = fc
    .date({ min: new Date("2020-01-01"), max: new Date("2030-01-01"), noInvalidDate: true })
    .map((d) => d.toISOString());
  const agent = fc.record({
    agent_id: fc.stringMatching(/^a-[a-z0-9]{1,12}$/),
    machine_id: fc.constant("hostile-m"),
    status: fc.constantFrom("active", "idle", "stale"),
    last_heartbeat: time,
    active_item_id: fc.constant(null),
    state: fc.constantFrom("idle", "working"),
    paused_until: fc.constant(null),
    clock_skew: fc.boolean(),
  });
  const item = fc.record({
    id: fc.stringMatching(/^[a-z2-7]{5,12}$/),
    title: fc.string({ maxLength: 60 }),
    labels: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
    priority: fc.integer({ min: 0, max: 3 }),
    stage: fc.constantFrom("backlog", "coding", "qa", "done"),
    depends_on: fc.constant([]),
    claim: fc.constant(null),
    created_at: time,
    created_by: fc.string({ maxLength: 10 }),
    updated_at: time,
    merged: fc.option(
      fc.record({
        sha: fc.stringMatching(/^[0-9a-f]{40}$/),
        base: fc.constantFrom("main", "trunk"),
        strategy: fc.constantFrom("merge", "squash", "rebase"),
        at: time,
      }),
    ),
  });
  const agents = fc.uniqueArray(agent, { maxLength: 5, selector: (a) => a.agent_id });
  const items = fc.uniqueArray(item, { maxLength: 5, selector: (i) => i.id });
  const gammaWith = (before: View, agentsOf: (a: any[]) => any[], itemsOf: (i: any[]) => any[]) =>
    before.map((p) =>
      p.name === "gamma"
        ? normal([
            {
              ...p,
              machines: p.machines.map((m: string) => ({ machine_id: m })),
              agents: agentsOf(p.agents),
              items: itemsOf(p.items),
            },
          ])[0]!
        : p,
    );
  const unchanged = (before: View) => before;
  /** One key of `value` (a path into it) set to a hostile value that the schema must refuse. */
  const corrupt = <T extends Record<string, unknown>>(
    valid: fc.Arbitrary<T>,
    refuse: Record<string, fc.Arbitrary<unknown>>,
  ) =>
    fc
      .tuple(valid, fc.constantFrom(...Object.keys(refuse)))
      .chain(([v, key]) => refuse[key]!.map((bad) => ({ ...v, [key]: bad })));
  const notString = nasty.filter((x) => typeof x !== "string");

  const validSnapshot = fc.tuple(agents, items).map(
    ([a, i]): RelayCase => ({
      text: () =>
        JSON.stringify({ type: "snapshot", at: new Date().toISOString(), agents: a, items: i, timers: 0, triggers: 0 }),
      expect: (before) =>
        gammaWith(
          before,
          () => a,
          () => i,
        ),
    }),
  );
  const protoSnapshot = fc.tuple(agents, items).map(
    ([a, i]): RelayCase => ({
      text: () => _withProto({ type: "snapshot", at: new Date().toISOString(), agents: a, items: i }),
      expect: (before) =>
        gammaWith(
          before,
          () => a,
          () => i,
        ),
    }),
  );
  const hostileSnapshot = fc
    .tuple(agents, items, fc.constantFrom("agent", "item", "frame"), fc.nat())
    .chain(([a, i, where, at]): fc.Arbitrary<Record<string, unknown>> => {
      const badAgent = corrupt(agent, {
        agent_id: notString,
        status: notString,
        last_heartbeat: fc.constant(5),
        clock_skew: fc.constant("yes"),
        machine_id: fc.constant("m".repeat(129)),
      });
      const badItem = corrupt(item, {
        id: fc.oneof(notString, fc.constant("")),
        title: fc.constant("t".repeat(501)),
        labels: fc.oneof(notString, fc.constant(Array(51).fill("l"))),
        stage: fc.oneof(notString, fc.constant("")),
        updated_at: notString,
        // null is a valid `merged` (not merged yet)
        merged: fc.oneof(
          notString.filter((x) => x !== null),
          time.map((at) => ({ sha: "a".repeat(65), base: "main", strategy: "merge", at })),
          time.map((at) => ({ sha: "a".repeat(40), base: "main", strategy: "s".repeat(17), at })),
          time.map((at) => ({ sha: "a".repeat(40), base: 5, strategy: "merge", at })),
        ),
      });
      if (where === "agent")
        return fc.oneof(badAgent, nasty).map((bad) => ({
          agents: [...a.slice(0, at % (a.length + 1)), bad, ...a.slice(at % (a.length + 1))],
          items: i,
        }));
      if (where === "item")
        return fc.oneof(badItem, nasty).map((bad) => ({
          agents: a,
          items: [...i.slice(0, at % (i.length + 1)), bad, ...i.slice(at % (i.length + 1))],
        }));
      return fc
        .record({ key: fc.constantFrom("type", "at", "agents", "items", "timers"), bad: nasty })
        .filter(
          ({ key, bad }) =>
            !(key === "timers" && Number.isInteger(bad) && (bad as number) >= 0) &&
            !(key === "agents" || key === "items" ? Array.isArray(bad) && bad.length === 0 : false),
        )
        .map(({ key, bad }) => ({ agents: a, items: i, [key]: bad }));
    })
    .map(
      (parts): RelayCase => ({
        text: () => JSON.stringify({ type: "snapshot", at: new Date().toISOString(), ...parts }),
        expect: unchanged,
      }),
    );

  const validHeartbeat = fc.stringMatching(/^h-[a-z0-9]{1,12}$/).map((id): RelayCase => {
    let at = "";
    return {
      text: () => {
        at = new Date().toISOString();
        return JSON.stringify({
          type: "event",
          event: {
            type: "heartbeat",
            at,
            agent_id: id,
            machine_id: "hostile-m",
            last_heartbeat: at,
            active_item_id: null,
            state: "idle",
            clock_skew: false,
          },
        });
      },
      expect: (before) =>
        gammaWith(
          before,
          (list) => [
            ...list.filter((a) => a.agent_id !== id),
            {
              agent_id: id,
              machine_id: "hostile-m",
              status: list.find((a) => a.agent_id === id)?.status ?? "active",
              last_heartbeat: at,
              active_item_id: null,
              state: "idle",
              paused_until: null,
              clock_skew: false,
            },
          ],
          (list) => list,
        ),
    };
  });
  const validOther = fc.constant<RelayCase>({
    text: () =>
      JSON.stringify({
        type: "event",
        event: { type: "timer_added", at: new Date().toISOString(), timer_id: "t1", label: null, next_fire_at: null },
      }),
    expect: unchanged,
  });
  const hostileEvent = fc
    .oneof(
      fc.record({
        type: fc.oneof(fc.constantFrom("launch", "__proto__", "constructor", "toString", "hasOwnProperty"), notString),
        agent_id: fc.constant("x"),
      }),
      fc.record({
        type: fc.constant("heartbeat"),
        agent_id: fc.oneof(notString, fc.constant("")),
        machine_id: fc.constant("m"),
        last_heartbeat: fc.constant("x"),
        active_item_id: fc.constant(null),
        state: fc.constant("idle"),
        clock_skew: fc.constant(false),
      }),
      fc.record({
        type: fc.constant("item_created"),
        item_id: fc.constant("abcde"),
        item: fc.oneof(
          nasty,
          item.map((i) => ({ ...i, id: "other" })),
        ),
      }),
      fc.record({
        type: fc.constant("agent_status"),
        agent_id: fc.constant("x"),
        status: nasty,
        previous: fc.constant(null),
      }),
    )
    .chain((event) => fc.oneof(fc.constant(new Date().toISOString()), nasty).map((at) => ({ ...event, at })))
    .chain((event) =>
      fc.oneof(
        fc.constant(event),
        nasty.filter((v) => v === null || typeof v !== "object"),
      ),
    )
    .map((event): RelayCase => ({ text: () => JSON.stringify({ type: "event", event }), expect: unchanged }));
  const junk = fc
    .oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 100 }),
      fc.constantFrom(
        "null",
        "[]",
        "{}",
        '{"type":"event"}',
        '{"type":"snapshot"}',
        "[".repeat(100_000) + "]".repeat(100_000),
      ),
      fc
        .integer({ min: 1, max: 300_000 })
        .map((n) =>
          JSON.stringify({ type: "snapshot", at: new Date().toISOString(), agents: Array(n).fill(null), items: [] }),
        ),
      fc.integer({ min: 2 * 2 ** 20 + 1, max: 3 * 2 ** 20 }).map((n) => "x".repeat(n)),
    )
    .map((t): RelayCase => ({ text: () => t, expect: unchanged }));
  return fc.oneof(validSnapshot, protoSnapshot, hostileSnapshot, validHeartbeat, validOther, hostileEvent, junk);
}

/** JSON of `value` with a `"__proto__"` key first in every object (JSON.stringify cannot write one). */
function _withProto(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(_withProto).join(",")}]`;
  if (!value || typeof value !== "object") return JSON.stringify(value);
  const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${_withProto(v)}`);
  return `{"__proto__":{"polluted":true,"agent_id":"evil"},${entries.join(",")}}`;
}

/** A TOML basic string holding `s` exactly (control characters and quotes escaped). */
function _tomlString(s: string): string {
  return `"${[...s].map((ch) => (ch === '"' || ch === "\\" ? `\\${ch}` : /[\x00-\x1f\x7f]/.test(ch) ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}` : ch)).join("")}"`;
}

/** Starts `drover gateway` on the file: the URL once it serves (and how to stop it), or its exit code and stderr. */
async function _gatewayOutcome(file: string): Promise<{ url?: string; stop(): void; code?: number; stderr: string }> {
  const proc = Bun.spawn([BUN, CLI, "gateway", "--config", file, "--port", "0"], { stdout: "pipe", stderr: "pipe" });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
    const url = / at (http:\/\/\S+) for /.exec(out)?.[1];
    if (url) return { url, stop: () => proc.kill("SIGKILL"), stderr: "" };
  }
  const code = await proc.exited;
  return { code, stderr: await new Response(proc.stderr as ReadableStream).text(), stop() {} };
}

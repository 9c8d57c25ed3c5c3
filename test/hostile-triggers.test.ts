/**
 * Triggers at the trust boundary, against a daemon process: whatever triggers a token holder sets up, one
 * originating event causes at most `triggers.max_actions_per_event` actions, the daemon keeps answering
 * `/health` within 100 ms during and after, it stays alive, and SIGTERM stops it within a few seconds.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { STAGES } from "../features/pipeline/stages.ts";
import { allFeatures } from "../runtime.ts";
import { declaredEvents } from "./contract.ts";
import { PING_PONG } from "./fixtures/ping-pong.ts";
import { api, BUN, CLI, type DaemonProc, hostileRuns, startDaemonProcess, tempProject, wsClient } from "./helpers.ts";

const BUDGET = 20;
const CONFIG = `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nworktrees = false\n[triggers]\nmax_actions_per_event = ${BUDGET}\n`;

type Frame = Record<string, any>;

/**
 * Polls /health every 20 ms; a probe fails when three tries in a row get no answer within 100 ms. The retries
 * absorb a daemon merely descheduled on a busy shared machine (two cores, other suites running); a daemon whose
 * event loop is stuck fails every try.
 */
function healthProbe(url: string) {
  const failures: string[] = [];
  let running = true;
  const once = async (): Promise<string | null> => {
    const started = performance.now();
    const ok = await fetch(url + "/health", { signal: AbortSignal.timeout(100) }).then(
      (r) => r.ok,
      () => false,
    );
    const ms = performance.now() - started;
    return ok && ms <= 100 ? null : `${ok ? "slow" : "no answer"} after ${ms.toFixed(0)} ms`;
  };
  const done = (async () => {
    while (running) {
      const misses: string[] = [];
      while (misses.length < 3) {
        const miss = await once();
        if (!miss) break;
        misses.push(miss);
      }
      if (misses.length === 3) failures.push(misses.join(", then "));
      await Bun.sleep(20);
    }
  })();
  return {
    failures,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Sends SIGTERM; the milliseconds until the process exited, or null after 5 s (then it is killed). */
async function sigterm(daemon: DaemonProc): Promise<number | null> {
  const started = Date.now();
  daemon.proc.kill("SIGTERM");
  const exited = await Promise.race([daemon.proc.exited.then(() => true), Bun.sleep(5000).then(() => false)]);
  if (!exited) daemon.proc.kill("SIGKILL");
  return exited ? Date.now() - started : null;
}

/** Waits until no frame has arrived for `quietMs` (at most 15 s). */
async function quiet(frames: Frame[], quietMs = 400): Promise<void> {
  const deadline = Date.now() + 15_000;
  let n = -1;
  while (frames.length !== n && Date.now() < deadline) {
    n = frames.length;
    await Bun.sleep(quietMs);
  }
}

describe("a trigger on trigger_loop_halted", () => {
  test("with a chain at the depth limit: halted once, /health answers within 100 ms, SIGTERM stops the daemon", async () => {
    const project = await tempProject({ config: CONFIG });
    const daemon = await startDaemonProcess([BUN, CLI], project.paths);
    try {
      const ws = await wsClient(daemon.url, daemon.token);
      // stored as an older drover allowed (trigger.add refuses it now): it must still match nothing
      const db = new Database(project.paths.db);
      db.exec("PRAGMA busy_timeout = 5000");
      db.query(
        `INSERT INTO triggers (id, label, predicate, action, mode, state, created_at)
         VALUES ('tgaaaaaaaa', NULL, ?, ?, 'persistent', 'active', '2026-01-01T00:00:00Z')`,
      ).run(JSON.stringify({ event: "trigger_loop_halted" }), JSON.stringify({ op: "items.list", args: {} }));
      db.query("UPDATE trigger_meta SET version = version + 1").run();
      db.close();
      for (const t of PING_PONG) expect((await api(daemon.url, daemon.token, "/api/triggers", t)).status).toBe(201);
      const item = (await api(daemon.url, daemon.token, "/api/items", { title: "ping-pong" })).body;
      const probe = healthProbe(daemon.url);
      for (const to of ["coding", "qa"])
        expect((await api(daemon.url, daemon.token, "/api/ops/item.move", { id: item.id, to })).status).toBe(200);
      await ws.waitFor((f) => f.type === "trigger_loop_halted", 10_000).catch(() => undefined);
      await Bun.sleep(1000);
      await probe.stop();
      expect(probe.failures).toEqual([]);
      const halted = ws.frames.filter((f) => f.type === "trigger_loop_halted");
      expect(halted).toEqual([expect.objectContaining({ reason: "depth", depth: 8, item_id: item.id })]);
      ws.close();
      expect(await sigterm(daemon)).not.toBeNull();
    } finally {
      if (daemon.proc.exitCode === null) daemon.proc.kill("SIGKILL");
      await daemon.proc.exited;
      project.cleanup();
    }
  }, 60_000);
});

describe("generated triggers", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  let daemon: DaemonProc;
  let ws: Awaited<ReturnType<typeof wsClient>>;
  let sink: ReturnType<typeof Bun.serve>;
  let other: ReturnType<typeof Bun.serve>;
  let leaked = 0;

  beforeAll(async () => {
    other = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        if (req.headers.has("x-secret")) leaked++;
        return new Response("other");
      },
    });
    sink = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(req) {
        await req.text();
        const path = new URL(req.url).pathname;
        if (path === "/self") return new Response(null, { status: 307, headers: { location: "/ok" } });
        if (path === "/other")
          return new Response(null, { status: 302, headers: { location: `http://127.0.0.1:${other.port}/x` } });
        if (path === "/big") return new Response(new Uint8Array(512 * 1024));
        return new Response("ok");
      },
    });
    project = await tempProject({ config: CONFIG });
    daemon = await startDaemonProcess([BUN, CLI], project.paths);
    ws = await wsClient(daemon.url, daemon.token);
  });
  afterAll(async () => {
    ws.close();
    if (daemon.proc.exitCode === null) daemon.proc.kill("SIGKILL");
    await daemon.proc.exited;
    sink.stop(true);
    other.stop(true);
    project.cleanup();
  });

  const stage = fc.constantFrom(...STAGES);
  // mostly events an item op causes, so chains form; at most one more filter, often one that holds
  const predicate = fc
    .tuple(
      fc.oneof(
        { weight: 4, arbitrary: fc.constant("item_created") },
        { weight: 4, arbitrary: fc.constantFrom("transition", "item_updated", "claimed", "trigger_fired") },
        { weight: 1, arbitrary: fc.constantFrom(...Object.keys(declaredEvents(allFeatures))) },
      ),
      fc.oneof(
        { weight: 8, arbitrary: fc.constant({}) },
        { weight: 1, arbitrary: fc.record({ to: stage }) },
        { weight: 1, arbitrary: fc.record({ from: stage }) },
        { weight: 1, arbitrary: fc.record({ item: fc.constantFrom("*", "zzzzz") }) },
        { weight: 1, arbitrary: fc.record({ labels: fc.constantFrom(["x"], ["x", "y"]) }) },
        { weight: 1, arbitrary: fc.record({ agent: fc.constantFrom("*", "bot-*") }) },
      ),
    )
    .map(([event, filter]) => ({ event, ...filter }));
  const action = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("item.create"),
        args: fc.record({
          title: fc.constantFrom("t", "$event.item_id", "$event.type", "$event.constructor"),
          labels: fc.constantFrom(["x"], ["x", "y"], []),
        }),
      }),
    },
    fc.record({ op: fc.constant("item.move"), args: fc.record({ id: fc.constant("$event.item_id"), to: stage }) }),
    fc.record({
      op: fc.constant("item.claim"),
      args: fc.record({ id: fc.constant("$event.item_id"), agent: fc.constantFrom("bot-1", "bot-2") }),
    }),
    fc.record({ op: fc.constant("items.list"), args: fc.constant({}) }),
    fc.record({ prompt: fc.constantFrom("review $event.item_id", "one more") }),
    fc.record({
      webhook: fc.record(
        {
          url: fc.constantFrom("/ok", "/self", "/other", "/big").map((p) => `http://127.0.0.1:${sink.port}${p}`),
          // the last two are refused when the trigger is made
          headers: fc.constantFrom(
            { "x-secret": "s" },
            {},
            { "x-secret": "s\r\nx-injected: 1" },
            { Host: "evil.example" },
          ),
          body: fc.constantFrom({ id: "$event.item_id" }, "$event.type"),
        },
        { requiredKeys: ["url"] },
      ),
    }),
  );
  const trigger: fc.Arbitrary<object> = fc.record({
    on: predicate,
    mode: fc.constantFrom("persistent", "persistent", "once"),
    action,
  });
  /** Always among the cases: triggers that fan out on every event an item causes, past the budget. */
  const wide = (["item_created", "item_created", "trigger_fired", "transition"] as const).map((event) => ({
    on: { event },
    mode: "persistent" as const,
    action: { op: "item.create", args: { title: "$event.type", labels: ["x"] } },
  }));
  const origin = fc.record({
    title: fc.constantFrom("origin", "$event.item_id"),
    labels: fc.constantFrom(["x", "y"], ["x"], []),
    move: fc.boolean(),
  });

  test("any triggers, one originating op: at most the budget per chain, /health within 100 ms, the daemon lives, no header leaks", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(trigger, { minLength: 1, maxLength: 6 }), origin, async (triggers, start) => {
        for (const t of (await api(daemon.url, daemon.token, "/api/ops/trigger.list", {})).body as Array<{
          id: string;
        }>) {
          await api(daemon.url, daemon.token, "/api/ops/trigger.cancel", { id: t.id });
        }
        let stored = 0;
        for (const t of triggers) {
          const added = await api(daemon.url, daemon.token, "/api/triggers", t);
          expect({ t, status: added.status < 500 }).toEqual({ t, status: true });
          if (added.status === 201) stored++;
        }
        // a refused trigger is not stored
        expect((await api(daemon.url, daemon.token, "/api/ops/trigger.list", {})).body).toHaveLength(stored);
        const mark = ws.frames.length;
        const probe = healthProbe(daemon.url);
        const item = (await api(daemon.url, daemon.token, "/api/items", { title: start.title, labels: start.labels }))
          .body;
        if (start.move) await api(daemon.url, daemon.token, "/api/ops/item.move", { id: item.id, to: "coding" });
        await quiet(ws.frames);
        await probe.stop();
        expect(probe.failures).toEqual([]);
        expect(daemon.proc.exitCode).toBeNull();
        const frames = ws.frames.slice(mark) as Frame[];
        const perChain = new Map<string, number>();
        for (const f of frames)
          if (f.type === "trigger_fired") perChain.set(f.cause.chain, (perChain.get(f.cause.chain) ?? 0) + 1);
        for (const [chain, n] of perChain) expect({ chain, n, ok: n <= BUDGET }).toEqual({ chain, n, ok: true });
        const halts = frames.filter((f) => f.type === "trigger_loop_halted").map((f) => `${f.cause.chain} ${f.reason}`);
        expect(halts.length).toBe(new Set(halts).size); // each chain reported once per reason
        expect(frames.filter((f) => f.type === "item_created" && f.cause).length).toBeLessThanOrEqual(
          BUDGET * Math.max(1, perChain.size),
        );
      }),
      { numRuns: hostileRuns(4), examples: [[wide, { title: "origin", labels: ["x"], move: true }]] },
    );
    expect(leaked).toBe(0); // custom headers never followed a redirect to another origin
  }, 120_000);

  test("SIGTERM in the middle of the widest chain stops the daemon within 5 s", async () => {
    for (let i = 0; i < 3; i++) {
      const wide = { on: { event: "item_created" }, mode: "persistent", op: "item.create", args: { title: "wide" } };
      await api(daemon.url, daemon.token, "/api/triggers", wide);
    }
    await api(daemon.url, daemon.token, "/api/items", { title: "seed" });
    const ms = await sigterm(daemon);
    expect(ms).not.toBeNull();
    expect(ms!).toBeLessThan(5000);
  }, 30_000);
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createApp } from "../server/app.ts";
import { type RunningServer, startServer } from "../server/serve.ts";
import { hostGuard } from "../web/guard.ts";
import { guarded } from "../web/ws.ts";
import { api, tempProject, testRuntime, wsClient } from "./helpers.ts";

const TOKEN = "secret-token";
let project: Awaited<ReturnType<typeof tempProject>>;
let ctx: Awaited<ReturnType<typeof testRuntime>>;
let server: RunningServer;

beforeAll(async () => {
  project = await tempProject();
  ctx = await testRuntime(project.paths);
  server = startServer(ctx.rt, { host: "127.0.0.1", port: 0, token: TOKEN, version: "test", wsMaxBuffered: 64 * 1024 });
});
afterAll(async () => {
  await server.stop();
  await ctx.rt.close();
  project.cleanup();
});

describe("HTTP", () => {
  test("/health is open; everything else needs the bearer token", async () => {
    const health = await fetch(server.url + "/health");
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, version: "test", machine_id: ctx.rt.ctx.machineId });
    for (const path of ["/api/items", "/api/ops", "/mcp", "/nope"]) {
      const res = await fetch(server.url + path, { method: path === "/mcp" ? "POST" : "GET" });
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
      expect(((await res.json()) as any).error.code).toBe("unauthorized");
    }
    const wrong = await fetch(server.url + "/api/items", { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    const ws = await fetch(server.url + "/ws");
    expect(ws.status).toBe(401);
  });

  test("errors: 400 with zod details, 404, 409, 413 — never a stack trace", async () => {
    const bad = await api(server.url, TOKEN, "/api/ops/item.create", { title: 7 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toEqual(["title"]);
    const notJson = await fetch(server.url + "/api/ops/item.create", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: "{",
    });
    expect(notJson.status).toBe(400);
    expect((await api(server.url, TOKEN, "/api/ops/no.such", {})).status).toBe(404);
    expect((await api(server.url, TOKEN, "/api/nothing/here")).status).toBe(404);
    const item = (await api(server.url, TOKEN, "/api/items", { title: "x" })).body;
    const illegal = await api(server.url, TOKEN, `/api/items/${item.id}/move`, { to: "done" });
    expect(illegal.status).toBe(409);
    expect(illegal.body.error).toMatchObject({
      code: "illegal_transition",
      details: { legal: ["coding", "blocked", "abandoned"] },
    });
    const big = await fetch(server.url + "/api/ops/item.create", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ title: "x".repeat(10 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    for (const res of [bad, illegal]) expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe("WebSocket", () => {
  test("frames carry a per-connection seq from 1; topics narrow what a client gets", async () => {
    const all = await wsClient(server.url, TOKEN);
    const syncOnly = await wsClient(server.url, TOKEN);
    syncOnly.ws.send(JSON.stringify({ type: "subscribe", topics: ["sync"] }));
    await syncOnly.waitFor((f) => f.type === "subscribed");
    await api(server.url, TOKEN, "/api/items", { title: "watched" });
    const created = await all.waitFor((f) => f.type === "item_created");
    expect(created.seq).toBe(1);
    expect((created.item as any).title).toBe("watched");
    await Bun.sleep(100);
    expect(syncOnly.frames.map((f) => f.type)).toEqual(["subscribed"]);
    syncOnly.ws.send(JSON.stringify({ type: "subscribe", topics: ["bogus"] }));
    expect((await syncOnly.waitFor((f) => f.type === "error")).message).toContain('Unknown topic "bogus"');
    all.close();
    syncOnly.close();
  });

  test("browsers may pass ?token= to /ws", async () => {
    const ws = new WebSocket(server.url.replace("http", "ws") + "/ws?token=" + TOKEN);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("refused"));
    });
    ws.close();
  });

  test("a client that falls behind gets a gap frame with the count and keeps its connection", async () => {
    const slow = await wsClient(server.url, TOKEN);
    const big = "y".repeat(200_000);
    // 300 events of 200 kB in one go: far past the 64 kB per-client limit
    for (let i = 0; i < 300; i++) ctx.rt.ctx.bus.publish("reconciled", { feature: "test", report: { big, i } });
    const gap = await slow.waitFor((f) => f.type === "gap", 15_000);
    expect(gap.dropped as number).toBeGreaterThan(0);
    const received = slow.frames.filter((f) => f.type === "reconciled").length;
    expect(received + (gap.dropped as number)).toBeLessThanOrEqual(300);
    ctx.rt.ctx.bus.publish("reconciled", { feature: "test", report: { after: true } });
    const after = await slow.waitFor((f) => f.type === "reconciled" && (f.report as any).after === true, 15_000);
    const seqs = slow.frames.map((f) => f.seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(after.seq).toBe(seqs.at(-1)!);
    slow.close();
  });
});

describe("limits and names", () => {
  test("WebSocket clients past server.max_ws_clients are answered 503 busy; a closed one frees its place", async () => {
    const small = await tempProject({ config: `[hub]\nremote = ""\n[server]\nmax_ws_clients = 2\n` });
    const { rt } = await testRuntime(small.paths);
    const capped = startServer(rt, { host: "127.0.0.1", port: 0, token: TOKEN, version: "test" });
    try {
      const [a, b] = [await wsClient(capped.url, TOKEN), await wsClient(capped.url, TOKEN)];
      const refused = await fetch(capped.url + "/ws", {
        headers: {
          authorization: `Bearer ${TOKEN}`,
          upgrade: "websocket",
          connection: "Upgrade",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          "sec-websocket-version": "13",
        },
      });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as any).error).toEqual({
        code: "busy",
        message: "Cannot open another WebSocket: 2 are open, the limit set by server.max_ws_clients",
      });
      a.close();
      await Bun.sleep(100);
      const c = await wsClient(capped.url, TOKEN);
      c.close();
      b.close();
    } finally {
      await capped.stop();
      await rt.close();
      small.cleanup();
    }
  });

  test("an unexpected error in one connection's handler closes that connection (1011), is logged, and the others go on", async () => {
    const logged: string[] = [];
    const log = { ...ctx.rt.ctx.log, error: (m: string) => void logged.push(m) };
    const echo = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req, srv) => (srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        message(ws, raw) {
          guarded(log, ws, "message", () => {
            if (raw === "boom") (null as unknown as { x: number }).x;
            ws.send(`echo ${raw}`);
          });
        },
      },
    });
    try {
      const open = async () => {
        const ws = new WebSocket(`ws://127.0.0.1:${echo.port}`);
        await new Promise((r) => (ws.onopen = r));
        return ws;
      };
      const [bad, good] = [await open(), await open()];
      const closed = new Promise<number>((r) => (bad.onclose = (e) => r(e.code)));
      bad.send("boom");
      expect(await closed).toBe(1011);
      expect(logged).toEqual(["WebSocket message handler failed: closing that connection"]);
      const reply = new Promise<string>((r) => (good.onmessage = (m) => r(String(m.data))));
      good.send("still here");
      expect(await reply).toBe("echo still here");
      good.close();
    } finally {
      await echo.stop(true);
    }
  });

  test("the app answers only its own names (app.request's Host is localhost); a 0.0.0.0 bind answers IP literals, never other names", async () => {
    const app = createApp(ctx.rt, { token: TOKEN, version: "test", startedAt: Date.now() });
    expect((await app.request("/health")).status).toBe(200);
    const evil = await app.request("/health", { headers: { host: "attacker.example" } });
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as any).error.message).toBe(
      'Cannot answer Host "attacker.example": it is not this server\'s address, localhost or a name in server.allowed_hosts',
    );
    const req = (host: string) => new Request("http://x/health", { headers: { host } });
    const wildcard = hostGuard("0.0.0.0", { extra: ["Build.Example"], setting: "server.allowed_hosts" });
    for (const host of [
      "192.168.1.7:4317",
      "10.0.0.1",
      "[fe80::1]:4317",
      "localhost:1",
      "build.example",
      "0.0.0.0:4317",
    ])
      expect({ host, ok: wildcard(req(host)) === null }).toEqual({ host, ok: true });
    for (const host of ["attacker.example", "192.168.1.7.nip.io", "", "a b", "localhost.:80", "[::1"])
      expect({ host, ok: wildcard(req(host)) === null }).toEqual({ host, ok: false });
    const bound = hostGuard("192.168.1.7", { extra: [], setting: "server.allowed_hosts" });
    expect([bound(req("192.168.1.7:9")), bound(req("[::1]:9"))]).toEqual([null, null]);
    expect(bound(req("10.0.0.1"))?.code).toBe("forbidden");
    expect(hostGuard("::1", { extra: [], setting: "x" })(req("[::1]:4317"))).toBeNull();
  });
});

describe("MCP", () => {
  test("the SDK's own client lists every op as a tool and calls one; bad input is a tool error", async () => {
    const client = new Client({ name: "test", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(server.url + "/mcp"), {
        requestInit: { headers: { authorization: `Bearer ${TOKEN}` } },
      }),
    );
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    // ops a person must choose (cliOnly) are not tools
    expect(names).toEqual(
      ctx.rt.ops
        .list()
        .filter((o) => !o.op.cliOnly)
        .map((o) => o.name)
        .sort(),
    );
    const create = tools.find((t) => t.name === "item.create")!;
    expect(create.inputSchema.required).toEqual(["title"]);
    const result = (await client.callTool({
      name: "item.create",
      arguments: { title: "from mcp", labels: ["m"] },
    })) as any;
    expect(result.isError).toBeFalsy();
    const item = JSON.parse(result.content[0].text);
    expect(item).toMatchObject({ title: "from mcp", labels: ["m"], stage: "backlog" });
    const bad = (await client.callTool({ name: "item.move", arguments: { id: item.id, to: "nowhere" } })) as any;
    expect(bad.isError).toBe(true);
    expect(JSON.parse(bad.content[0].text).error.code).toBe("invalid_input");
    await client.close();
  });

  test("every tool carries annotations from its op: reads are read-only, writes neither destructive nor open-world unless declared", async () => {
    const client = new Client({ name: "test", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(server.url + "/mcp"), {
        requestInit: { headers: { authorization: `Bearer ${TOKEN}` } },
      }),
    );
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((t) => [t.name, t.annotations]));
    for (const { name, op } of ctx.rt.ops.list().filter((o) => !o.op.cliOnly)) {
      const a = byName.get(name);
      expect({ name, openWorld: a?.openWorldHint }).toEqual({ name, openWorld: false });
      if (!op.writes) expect({ name, readOnly: a?.readOnlyHint }).toEqual({ name, readOnly: true });
      else
        expect({ name, readOnly: a?.readOnlyHint, destructive: a?.destructiveHint }).toEqual({
          name,
          readOnly: false,
          destructive: op.destructive ?? false,
        });
    }
    // what Codex's exec needs to call a tool with no person there: read-only, or neither destructive nor open-world
    const callable = tools.filter(
      (t) =>
        t.annotations?.readOnlyHint ||
        (t.annotations?.destructiveHint === false && t.annotations?.openWorldHint === false),
    );
    expect(callable.map((t) => t.name)).toEqual(
      expect.arrayContaining(["item.next", "item.move", "heartbeat", "items.list", "usage.report"]),
    );
    expect(byName.get("agent.takeover")?.destructiveHint).toBe(true);
    await client.close();
  });

  test("an MCP stream outlives the server's idle timeout", async () => {
    const short = startServer(ctx.rt, {
      host: "127.0.0.1",
      port: 0,
      token: TOKEN,
      version: "test",
      idleTimeoutSecs: 1,
    });
    const client = new AbortController();
    try {
      const asked = performance.now();
      const res = await fetch(short.url + "/mcp", {
        headers: { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" },
        signal: client.signal,
      });
      expect(res.status).toBe(200);
      // headers at once, not with the SDK's first keep-alive 15 s later (a client waited that long for its stream)
      expect(performance.now() - asked).toBeLessThan(1000);
      const reader = res.body!.getReader();
      // it was cut at Bun's idle timeout (10 s by default): a client lost its stream between two tool calls
      const outcome = await Promise.race([
        (async () => {
          for (;;) if ((await reader.read()).done) return "closed";
        })().catch(() => "reset"),
        Bun.sleep(2500).then(() => "open"),
      ]);
      expect(outcome).toBe("open");
    } finally {
      client.abort();
      // the MCP SDK's stream does not end on a client's abort: the server closes it
      await Promise.race([short.stop(), Bun.sleep(1000)]);
    }
  });
});

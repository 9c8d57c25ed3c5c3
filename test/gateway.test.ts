/** The gateway with real processes: one gateway, two projects, three daemons (two machines of one project). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventFrame, RELAY_FRAME_BYTES, snapshotFrame, snapshotSchema } from "../features/gateway/frames.ts";
import { backoffMs } from "../features/gateway/relay.ts";
import {
  api,
  BINARY,
  type DaemonProc,
  run,
  startDaemonProcess,
  tempProject,
  until,
  upgrade,
  waitHealthy,
  wsClient,
} from "./helpers.ts";

const READER = "reader-token-0123456789";
const TOKENS = { alpha: "alpha-token-0123456789", beta: "beta-token-0123456789" };
let dir: string;
let port: number;
let gateway: ReturnType<typeof Bun.spawn>;
const url = () => `http://127.0.0.1:${port}`;
const projects: Array<Awaited<ReturnType<typeof tempProject>>> = [];
const daemons: DaemonProc[] = [];

async function startGatewayProcess() {
  gateway = Bun.spawn([BINARY, "gateway", "--config", join(dir, "gateway.toml"), "--port", String(port)], {
    stdout: "pipe",
    stderr: "pipe",
  });
  await waitHealthy(url(), () => gateway.exitCode === null);
}
const view = () => api(url(), READER, "/api/projects").then((r) => r.body as Array<Record<string, any>>);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "drover-gw-"));
  writeFileSync(
    join(dir, "gateway.toml"),
    `token = "${READER}"\n\n[[project]]\nname = "alpha"\ntoken = "${TOKENS.alpha}"\n\n[[project]]\nname = "beta"\ntoken = "${TOKENS.beta}"\n`,
  );
  const probe = Bun.serve({ port: 0, fetch: () => new Response() });
  port = probe.port!;
  await probe.stop(true);
  await startGatewayProcess();
  for (const name of ["alpha", "alpha", "beta"] as const) {
    const project = await tempProject({
      config: `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[gateway]\nurl = "${url()}"\nproject = "${name}"\ntoken = "${TOKENS[name]}"\n`,
      trusted: true,
    });
    projects.push(project);
    daemons.push(await startDaemonProcess([BINARY], project.paths));
  }
}, 30_000);
afterAll(async () => {
  for (const d of daemons) await d.stop();
  gateway.kill("SIGKILL");
  for (const p of projects) p.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("gateway", () => {
  test("both projects with agent counts by status and items by stage; events reach readers tagged by project", async () => {
    const reader = await wsClient(url(), READER);
    const [a1, a2, b] = daemons as [DaemonProc, DaemonProc, DaemonProc];
    for (const [d, agents] of [
      [a1, ["a1", "a2"]],
      [a2, ["a3"]],
      [b, ["b1"]],
    ] as const) {
      for (const agent of agents) await api(d.url, d.token, `/api/agents/${agent}/heartbeat`, {});
    }
    for (let i = 0; i < 2; i++) await api(a1.url, a1.token, "/api/items", { title: `alpha ${i}` });
    const moved = (await api(a2.url, a2.token, "/api/items", { title: "alpha moved" })).body;
    await api(a2.url, a2.token, `/api/items/${moved.id}/move`, { to: "coding" });
    await api(b.url, b.token, "/api/items", { title: "beta" });
    await until(async () => {
      const v = await view();
      const alpha = v.find((p) => p.name === "alpha")!;
      return alpha.agents.active === 3 && alpha.items.backlog === 2 && alpha.items.coding === 1;
    }, 10_000);
    const v = await view();
    expect(v.find((p) => p.name === "alpha")).toMatchObject({
      online: true,
      agents: { active: 3 },
      items: { backlog: 2, coding: 1 },
    });
    expect(v.find((p) => p.name === "alpha")!.machines).toHaveLength(2);
    expect(v.find((p) => p.name === "beta")).toMatchObject({
      online: true,
      agents: { active: 1 },
      items: { backlog: 1 },
    });
    expect((await api(url(), READER, "/api/projects/beta/agents")).body.map((a: any) => a.agent_id)).toEqual(["b1"]);
    expect((await api(url(), READER, "/api/projects/nope/items")).status).toBe(404);
    expect((await fetch(url() + "/api/projects")).status).toBe(401);

    await api(b.url, b.token, "/api/agents/b2/heartbeat", {});
    const frame = await reader.waitFor((f) => f.type === "heartbeat" && f.agent_id === "b2");
    expect(frame).toMatchObject({ project: "beta" });
    const status = await run([BINARY, "status"], projects[0]!.dir);
    expect(status.stdout).toMatch(/gateway\s+http:\/\/127\.0\.0\.1:\d+: relay connected/);
    reader.close();
  }, 30_000);

  test("gateway killed and restarted: relays reconnect within the backoff bound and the view matches the daemons again", async () => {
    const [a1] = daemons as [DaemonProc];
    gateway.kill("SIGKILL");
    await gateway.exited;
    // meanwhile the daemons keep working: an agent leaves, items arrive
    unlinkSync(join(projects[0]!.paths.hub, "heartbeats", "a2.json"));
    for (let i = 0; i < 3; i++) await api(a1.url, a1.token, "/api/items", { title: `while down ${i}` });
    await Bun.sleep(1500);
    const restarted = Date.now();
    await startGatewayProcess();
    await until(async () => {
      const alpha = (await view()).find((p) => p.name === "alpha")!;
      return alpha.machines.every((m: any) => m.connected) && alpha.agents.active === 2 && alpha.items.backlog === 5;
    }, 15_000);
    // attempts so far: at most the first three delays (1 + 2 + 4 s, +10 %) after the kill
    expect(Date.now() - restarted).toBeLessThan(backoffMs(0, () => 1) + backoffMs(1, () => 1) + backoffMs(2, () => 1));
    const agents = (await api(url(), READER, "/api/projects/alpha/agents")).body.map((a: any) => a.agent_id).sort();
    expect(agents).toEqual(["a1", "a3"]);
  }, 40_000);

  test("wrong token, unknown or missing project are refused at the upgrade; malformed and oversized frames are dropped or closed; the others are served", async () => {
    const upgradeRelay = (headers: Record<string, string>) => upgrade(url() + "/relay", headers);
    const relay = (project: string, token: string) =>
      new WebSocket(url().replace("http", "ws") + "/relay", {
        headers: { authorization: `Bearer ${token}`, "x-drover-project": project },
      } as never);
    const closed = (ws: WebSocket) =>
      new Promise<{ code: number; reason: string }>((r) => (ws.onclose = (e) => r({ code: e.code, reason: e.reason })));
    const hello = (project: string) => JSON.stringify({ type: "hello", project, machine_id: "intruder", version: "x" });

    for (const [headers, status, message] of [
      [
        { authorization: "Bearer nope-nope-nope-nope", "x-drover-project": "alpha" },
        401,
        'Wrong token for project "alpha"',
      ],
      [{ "x-drover-project": "alpha" }, 401, 'Wrong token for project "alpha"'],
      [{ authorization: `Bearer ${TOKENS.alpha}`, "x-drover-project": "gamma" }, 404, 'Unknown project "gamma"'],
      [
        { authorization: `Bearer ${TOKENS.alpha}` },
        401,
        'Missing the "x-drover-project" header naming the relay\'s project',
      ],
    ] as const) {
      const res = await upgradeRelay(headers);
      expect({ status: res.status, body: await res.json() }).toMatchObject({ status, body: { error: { message } } });
    }

    const other = relay("alpha", TOKENS.alpha);
    other.onopen = () => other.send(hello("beta"));
    expect(await closed(other)).toEqual({ code: 4400, reason: 'Expected a hello for project "alpha" first' });

    const noisy = relay("beta", TOKENS.beta);
    await new Promise((r) => (noisy.onopen = r));
    noisy.send(hello("beta"));
    for (const junk of [
      "not json",
      "null",
      "[]",
      '{"type":"event"}',
      '{"type":"event","event":{"type":5}}',
      '{"type":"launch"}',
      '{"type":"snapshot","at":"x","agents":[null]}',
    ])
      noisy.send(junk);
    await Bun.sleep(200);
    expect(noisy.readyState).toBe(WebSocket.OPEN);
    const big = closed(noisy);
    noisy.send("x".repeat(17 * 1024 * 1024));
    expect((await big).code).toBe(1009);

    expect((await view()).map((p) => p.name)).toEqual(["alpha", "beta"]);
    const [, , b] = daemons as [DaemonProc, DaemonProc, DaemonProc];
    const reader = await wsClient(url(), READER);
    await api(b.url, b.token, "/api/agents/b3/heartbeat", {});
    expect(await reader.waitFor((f) => f.agent_id === "b3")).toMatchObject({ project: "beta" });
    reader.close();
  }, 30_000);

  test("a snapshot that would exceed the frame limit keeps the most recent items, says how many it left out, and carries no bodies", () => {
    const item = (i: number) => ({
      id: `item-${i}`,
      title: "t".repeat(500),
      body: "b".repeat(60_000),
      labels: Array.from({ length: 50 }, (_, j) => `${j}`.padEnd(64, "l")),
      priority: 2,
      stage: "backlog",
      depends_on: [],
      claim: null,
      fence: 0,
      created_at: "2026-01-01T00:00:00.000Z",
      created_by: "x",
      updated_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    });
    const items = Array.from({ length: 700 }, (_, i) => item(i));
    const at = new Date().toISOString();
    const { text, summary } = snapshotFrame(at, {
      agents: [null, { agent_id: "a1", status: "active", last_heartbeat: at }],
      items,
      timers: 1,
      triggers: 2,
    });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(RELAY_FRAME_BYTES);
    const snap = snapshotSchema.parse(JSON.parse(text));
    expect(summary).toMatchObject({
      at,
      agents: 1,
      agents_left_out: 1,
      items: snap.items.length,
      items_left_out: 700 - snap.items.length,
    });
    expect(snap.items.length).toBeGreaterThan(300);
    expect(snap.items.length).toBeLessThan(700);
    expect(snap.items.map((i) => i.updated_at)).toEqual(
      items
        .slice(-snap.items.length)
        .map((i) => i.updated_at)
        .reverse(),
    );
    expect(text).not.toContain('"body"');
    const small = snapshotFrame(at, { agents: [], items: items.slice(0, 3), timers: 0, triggers: 0 });
    expect(small.summary).toMatchObject({ items: 3, items_left_out: 0 });
  });

  test("an item's merge result travels to the gateway (its board shows where the work landed); its notes do not", () => {
    const at = "2026-01-01T00:00:00.000Z";
    const merged = { sha: "a".repeat(40), base: "main", strategy: "squash", at };
    const done = { id: "k7q2m", title: "t", stage: "done", created_at: at, updated_at: at, merged };
    const notes = [{ at, agent_id: null, text: "n".repeat(4000) }];
    const { text } = snapshotFrame(at, { agents: [], items: [{ ...done, notes }], timers: 0, triggers: 0 });
    const [item] = snapshotSchema.parse(JSON.parse(text)).items;
    expect(item).toMatchObject({ id: "k7q2m", merged });
    expect(text).not.toContain('"notes"');
    // nor in an event: 50 notes of 4 KiB would pass the frame limit and the event would not travel at all
    const many = Array.from({ length: 50 }, () => notes[0]);
    const frame = eventFrame({ type: "item_updated", at, item: { ...done, notes: many } } as never);
    expect(frame).not.toBeNull();
    expect(JSON.parse(frame!).event.item).toMatchObject({ merged });
    expect(frame).not.toContain('"notes"');
  });

  test("backoff doubles from 1 s to 60 s with ±10 % jitter", () => {
    expect([0, 1, 2, 5, 6, 7, 20].map((n) => backoffMs(n, () => 0.5))).toEqual([
      1000, 2000, 4000, 32_000, 60_000, 60_000, 60_000,
    ]);
    expect(backoffMs(0, () => 0)).toBe(900);
    expect(backoffMs(0, () => 1)).toBe(1100);
  });
});

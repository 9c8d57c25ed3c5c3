/** The pipeline across processes: a daemon and CLI processes beside it share one hub and one store. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { itemPath } from "../features/pipeline/item.ts";
import { api, BUN, CLI, cli, type DaemonProc, startDaemonProcess, tempProject, wsClient } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;

beforeAll(async () => {
  // only the test reconciles: the daemon's own 30 s pass could otherwise get to a corrupted file first
  project = await tempProject({ config: '[hub]\nremote = ""\n[reconcile]\ninterval_secs = 3600\n' });
  daemon = await startDaemonProcess([BUN, CLI], project.paths);
});
afterAll(async () => {
  await daemon.stop();
  project.cleanup();
});

describe("pipeline across processes", () => {
  test("item.next from 10 concurrent clients (5 HTTP, 5 CLI processes) on 5 ready items: 5 distinct winners", async () => {
    for (let i = 0; i < 5; i++)
      expect((await api(daemon.url, daemon.token, "/api/items", { title: `ready ${i}` })).status).toBe(201);
    const http = Array.from({ length: 5 }, (_, i) =>
      api(daemon.url, daemon.token, "/api/next", { agent: `http-${i}` }).then((r) => ({
        via: "http",
        id: r.body.item?.id as string | undefined,
        refused: r.body.item === null,
      })),
    );
    const procs = Array.from({ length: 5 }, (_, i) =>
      cli(["item", "next", "--agent", `cli-${i}`, "--json"], project.dir).then((r) => {
        const out = JSON.parse(r.stdout) as { item: { id: string } | null };
        expect(r.code).toBe(out.item ? 0 : 1);
        return { via: "cli", id: out.item?.id, refused: out.item === null };
      }),
    );
    const results = await Promise.all([...http, ...procs]);
    const winners = results.filter((r) => r.id).map((r) => r.id);
    expect(winners).toHaveLength(5);
    expect(new Set(winners).size).toBe(5);
    expect(results.filter((r) => r.refused)).toHaveLength(5);
    const coding = (await api(daemon.url, daemon.token, "/api/items?stage=coding")).body as Array<{
      claim: { fence: number };
    }>;
    expect(coding).toHaveLength(5);
    for (const item of coding) expect(item.claim.fence).toBe(1);
  }, 30_000);

  test("a CLI item move while the daemon runs reaches a WebSocket client as a transition", async () => {
    const client = await wsClient(daemon.url, daemon.token);
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "moved by the cli" })).body;
    const moved = await cli(
      ["item", "move", "--id", item.id, "--to", "blocked", "--reason", "waiting on review"],
      project.dir,
    );
    expect(moved.code).toBe(0);
    const frame = await client.waitFor((f) => f.type === "transition" && f.item_id === item.id);
    expect(frame).toMatchObject({ from: "backlog", to: "blocked", reason: "waiting on review", origin: "local" });
    client.close();
  });

  test("drover dashboard prints the page's link with the token (in the fragment, never sent to the server)", async () => {
    const r = await cli(["dashboard", "--no-open"], project.dir);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`${daemon.url}/#token=${daemon.token}`);
    expect(await fetch(daemon.url + "/").then((res) => res.text())).toContain("<title>drover</title>");
  });

  test("a hand-corrupted item file is reported by reconcile and the daemon keeps serving", async () => {
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "will be corrupted" })).body;
    writeFileSync(join(project.paths.hub, itemPath(item.id)), "\u0000garbage");
    const report = await api(daemon.url, daemon.token, "/api/reconcile", {});
    expect(report.status).toBe(200);
    expect(report.body.pipeline).toMatchObject({ rejected: 1, restored: 1 });
    expect((await fetch(daemon.url + "/health")).status).toBe(200);
    expect((await api(daemon.url, daemon.token, `/api/items/${item.id}`)).body.title).toBe("will be corrupted");
  });

  test("bad input over REST: unknown id 404, illegal move 409 with legal targets, traversal and 10 kB ids 400", async () => {
    expect((await api(daemon.url, daemon.token, "/api/items/zzzzz")).status).toBe(404);
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "x" })).body;
    const illegal = await api(daemon.url, daemon.token, `/api/items/${item.id}/move`, { to: "merge" });
    expect(illegal.status).toBe(409);
    expect(illegal.body.error.details.legal).toEqual(["coding", "blocked", "abandoned"]);
    for (const id of ["..%2Fx", encodeURIComponent("../../etc/passwd"), "a".repeat(10_000)]) {
      expect((await api(daemon.url, daemon.token, `/api/items/${id}`)).status).toBe(400);
    }
    expect((await api(daemon.url, daemon.token, "/api/ops/item.claim", { id: "../x", agent: "a" })).status).toBe(400);
    expect((await api(daemon.url, daemon.token, "/api/ops/item.claim", { id: item.id, agent: "../evil" })).status).toBe(
      400,
    );
    expect((await api(daemon.url, daemon.token, "/api/log?limit=notanumber")).status).toBe(400);
  });

  test("GET /api/log reads the ops back from the hub's history, newest first, filtered by item", async () => {
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "logged" })).body;
    await api(daemon.url, daemon.token, `/api/items/${item.id}/move`, { to: "coding", reason: "go" });
    const log = await api(daemon.url, daemon.token, `/api/log?item=${item.id}&limit=10`);
    expect(log.body.map((e: { op: string }) => e.op)).toEqual(["item.move", "item.create"]);
    expect(log.body[0].args).toMatchObject({ id: item.id, to: "coding", reason: "go" });
  });
});

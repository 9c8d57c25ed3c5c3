/**
 * The outbox forgets decided ops after `hub.outbox_retention_days` (SPEC §15): `state.db` stays the same size
 * while a machine keeps working day after day (an injected clock drives the days), and what still waits for the
 * remote is never forgotten.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualClock } from "../core/clock.ts";
import { RELAY_KEPT, relayEvent } from "../core/relay.ts";
import { tempProject, testRuntime } from "./helpers.ts";
import { type Machine, machine } from "./sync-machines.ts";

const dirs: string[] = [];
const machines: Machine[] = [];
afterEach(async () => {
  for (const m of machines.splice(0)) await m.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function bareRemote(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-remote-")));
  dirs.push(dir);
  execFileSync("git", ["init", "-q", "--bare", dir]);
  return dir;
}

const rows = (m: Machine, status: string) =>
  m.rt.ctx.db.query<{ n: number }, [string]>("SELECT count(*) AS n FROM outbox WHERE status = ?").get(status)!.n;
const pages = (m: Machine) => m.rt.ctx.db.query<{ page_count: number }, []>("PRAGMA page_count").get()!.page_count;

describe("outbox retention", () => {
  test("decided ops go after the retention window; pending ones stay; state.db stops growing", async () => {
    const clock = manualClock("2026-10-01T09:00:00Z");
    const m = await machine(bareRemote(), {
      clock,
      mode: "daemon", // its events go to its own subscribers, not into the relay for a daemon
      config: '[hub]\nremote = "origin"\noutbox_retention_days = 3\n',
    });
    machines.push(m);
    const sizes: number[] = [];
    // the same ten items, claimed and released all day: the state stays the same size, only ops accumulate
    const ids: string[] = [];
    for (let i = 0; i < 10; i++)
      ids.push((await m.op("item.create", { title: `item ${i}`, body: "x".repeat(400) })).id);
    for (let day = 0; day < 12; day++) {
      for (let i = 0; i < 15; i++) {
        const id = ids[i % ids.length]!;
        const { fence } = await m.op("item.claim", { id, agent: `agent-${day % 3}` });
        await m.op("item.release", { id, agent: `agent-${day % 3}`, fence });
      }
      await m.rt.ctx.services.sync.round({ force: true });
      clock.advance(86_400_000);
      await m.rt.reconcile();
      sizes.push(pages(m));
    }
    // only the ops of the last three days are remembered
    expect(rows(m, "confirmed")).toBeLessThanOrEqual(3 * 30 + 1);
    expect(rows(m, "confirmed")).toBeGreaterThan(0);
    // once the window is full, freed pages are reused: flat, not growing by a day's worth each day
    const settled = sizes.slice(5);
    expect(Math.max(...settled) - Math.min(...settled)).toBeLessThanOrEqual(Math.ceil(sizes[5]! * 0.1));

    // an op the remote has not taken yet is never forgotten, however old
    const offline = await machine(bareRemote(), {
      clock,
      config: '[hub]\nremote = "/nonexistent/remote"\noutbox_retention_days = 1\n',
    });
    machines.push(offline);
    await offline.op("item.create", { title: "waits" });
    clock.advance(30 * 86_400_000);
    await offline.rt.reconcile();
    expect(rows(offline, "pending")).toBe(1);
  }, 120_000);

  test("forgetting searches an index of the decided ops, not every row (it runs at every reconcile)", async () => {
    const project = await tempProject({ config: '[hub]\nremote = ""\n' });
    dirs.push(project.dir);
    const { rt } = await testRuntime(project.paths);
    const { db } = rt.ctx;
    const statements: string[] = [];
    const query = db.query.bind(db);
    db.query = ((sql: string) => {
      statements.push(sql);
      return query(sql);
    }) as typeof db.query;
    try {
      rt.ctx.hub.outbox.forget("2026-10-01T09:00:00Z");
    } finally {
      db.query = query;
    }
    expect(statements).toHaveLength(1);
    const [sql] = statements as [string];
    const plan = db.query<{ detail: string }, string[]>(`EXPLAIN QUERY PLAN ${sql}`).all(
      ...sql
        .split("?")
        .slice(1)
        .map(() => ""),
    );
    expect(plan.map((p) => p.detail)).toEqual([expect.stringMatching(/^SEARCH outbox USING INDEX /)]);
    await rt.close();
  });

  test("the CLI without a daemon: the events relayed for it stay bounded (the newest are kept)", async () => {
    const m = await machine(bareRemote(), { config: '[hub]\nremote = ""\n' });
    machines.push(m);
    const insert = (n: number) => {
      for (let i = 0; i < n; i++)
        relayEvent(m.rt.ctx.db, { type: "gap", at: "2026-10-01T09:00:00Z", dropped: i } as any);
    };
    insert(RELAY_KEPT + 3000);
    const count = () => m.rt.ctx.db.query<{ n: number }, []>("SELECT count(*) AS n FROM event_relay").get()!.n;
    expect(count()).toBeLessThanOrEqual(RELAY_KEPT + 256);
    expect(count()).toBeGreaterThanOrEqual(RELAY_KEPT);
    const newest = m.rt.ctx.db
      .query<{ event: string }, []>("SELECT event FROM event_relay ORDER BY id DESC LIMIT 1")
      .get()!;
    expect(JSON.parse(newest.event).dropped).toBe(RELAY_KEPT + 2999);
  });
});

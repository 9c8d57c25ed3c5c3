/**
 * Local op rate: `item.create`, `item.claim`, `item.move` through the compiled daemon's HTTP API, 32 clients,
 * no remote — beside the floor, raw `bun:sqlite` writing the same item rows (same schema and pragmas, one
 * transaction per op) in this process, run in the same bench run; and the same ops each sent with an
 * `Idempotency-Key` (what a client that retries safely pays).
 */
import type { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Paths } from "../core/paths.ts";
import { openStore } from "../core/store.ts";
import { viewMigrations } from "../features/pipeline/view.ts";
import { median, type Row, startBinary, workDir } from "./lib.ts";

const CLIENTS = 32;

export async function opsRows(paths: Paths, options: { quick: boolean }): Promise<Row[]> {
  const n = options.quick ? 600 : 3000;
  const rounds = options.quick ? 1 : 5;
  const drover: number[] = [];
  const keyed: number[] = [];
  const floor: number[] = [];
  // the op path alone: with worktrees on, every move into coding also runs `git worktree add` (git's cost)
  await Bun.write(paths.config, '[hub]\nremote = ""\n[pipeline]\nworktrees = false\n');
  const { proc, url } = await startBinary(paths);
  const token = (await Bun.file(paths.token).text()).trim();
  let keys = 0;
  const post = (path: string, body: unknown, withKey: boolean) =>
    fetch(url + path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...(withKey ? { "idempotency-key": `bench-${++keys}` } : {}),
      },
      body: JSON.stringify(body),
    }).then((r) => r.json() as Promise<any>);
  let sample: any = null;
  /** Ops per second over one round; each client: create, claim, move — a third of the ops each. */
  async function round(withKey: boolean): Promise<number> {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, w) => {
        while (next < n) {
          next += 3;
          const item = await post("/api/ops/item.create", { title: `bench ${w}` }, withKey);
          await post("/api/ops/item.claim", { id: item.id, agent: `w${w}` }, withKey);
          sample = await post("/api/ops/item.move", { id: item.id, to: "coding", agent: `w${w}` }, withKey);
        }
      }),
    );
    return (next / (performance.now() - started)) * 1000;
  }
  for (let r = 0; r < rounds; r++) {
    drover.push(await round(false));
    keyed.push(await round(true));
    floor.push(_sqliteFloor(n, sample));
  }
  proc.kill("SIGTERM");
  await proc.exited;
  const rate = Math.round(median(drover));
  const withKeys = Math.round(median(keyed));
  const raw = Math.round(median(floor));
  return [
    {
      row: `local ops through HTTP (create/claim/move, ${CLIENTS} clients)`,
      value: rate,
      unit: "ops/s",
      bar: "≥ 1000 ops/s",
      pass: rate >= 1000,
      detail: `${Math.round((rate / raw) * 1000) / 10}% of the raw bun:sqlite floor`,
    },
    {
      row: "the same ops, each with an Idempotency-Key",
      value: withKeys,
      unit: "ops/s",
      bar: "(reported)",
      pass: true,
      detail: `${Math.round((withKeys / rate) * 1000) / 10}% of the rate without keys`,
    },
    {
      row: "floor: raw bun:sqlite writes of the same item rows, one transaction each",
      value: raw,
      unit: "ops/s",
      bar: "(floor)",
      pass: true,
    },
  ];
}

// --- internal ---

/** Ops per second writing what the ops leave in the items table: insert, then two updates, each committed alone. */
function _sqliteFloor(n: number, item: any): number {
  const dir = mkdtempSync(join(workDir(), "sqlite-"));
  const db: Database = openStore(join(dir, "floor.db"));
  try {
    for (const sql of viewMigrations) db.run(sql);
    const text = JSON.stringify(item, null, 2);
    const insert = db.query(
      "INSERT INTO items (id, stage, priority, created_at, updated_at, holder, expires_at, labels, json) VALUES (?, 'backlog', 2, ?, ?, NULL, NULL, '[]', ?)",
    );
    const claim = db.query("UPDATE items SET holder = ?, expires_at = ?, updated_at = ?, json = ? WHERE id = ?");
    const move = db.query("UPDATE items SET stage = 'coding', updated_at = ?, json = ? WHERE id = ?");
    const started = performance.now();
    for (let i = 0; i < n; i += 3) {
      const id = `floor${i}`;
      const at = new Date().toISOString();
      insert.run(id, at, at, text);
      claim.run("w", Date.now() + 3_600_000, at, text, id);
      move.run(at, text, id);
    }
    return (n / (performance.now() - started)) * 1000;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

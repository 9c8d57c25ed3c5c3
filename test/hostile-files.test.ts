/**
 * Hostile hub files, generated: another "machine" (a plain git clone of the remote) commits item, heartbeat and
 * meta files holding garbage — wrong types, broken JSON, deep nesting, control characters, huge values, ids
 * that point elsewhere — and the same contents are written straight into a machine's working hub. Every case
 * ends with the file skipped and reported; sync goes on; what was stored before is unchanged; ops still work.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import fc from "fast-check";
import { itemSchema } from "../features/pipeline/item.ts";
import { bareRepo } from "./git-server.ts";
import { type Machine, machine } from "./sync-machines.ts";

let remote: { root: string; path: string };
let a: Machine;
let intruder: string;
let witness: { id: string; item: unknown };

beforeAll(async () => {
  remote = bareRepo();
  a = await machine(remote.path, {
    config: `[hub]\nremote = "${remote.path}"\n[pipeline]\nworktrees = false\nauto_assign = false\n`,
    trusted: true,
  });
  const item = await a.op("item.create", { title: "precious", labels: ["keep"] });
  await a.op("item.claim", { id: item.id, agent: "keeper" });
  witness = { id: item.id, item: await a.op("item.get", { id: item.id }) };
  intruder = mkdtempSync(join(tmpdir(), "drover-intruder-"));
  execFileSync("git", ["clone", "-q", "-b", "drover/hub", remote.path, intruder]);
});
afterAll(async () => {
  await a.cleanup();
  rmSync(intruder, { recursive: true, force: true });
  rmSync(remote.root, { recursive: true, force: true });
});

const nastyText = fc.oneof(
  fc.constantFrom("", "{", "null", "[]", '{"id":', "\u0000\u0001\u0002", "\uFEFF{}", "{}".repeat(5000)),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.constant("x".repeat(2_000_000)),
  fc.constant("[".repeat(100_000) + "]".repeat(100_000)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
);
const nastyValue = fc.oneof(
  fc.constantFrom("../../etc/passwd", "\u202e", "", null, -1, 1e308, true, [], {}),
  fc.string(),
  fc.integer(),
  fc.jsonValue(),
);
/** A valid item or heartbeat with one field made hostile. */
const broken = (valid: Record<string, unknown>) =>
  fc
    .tuple(fc.constantFrom(...Object.keys(valid), "__proto__", "constructor"), nastyValue)
    .map(([k, v]) => JSON.stringify({ ...valid, [k]: v }));

const itemName = fc.stringMatching(/^[a-z2-7]{5,8}$/);

/** The witness with every optional field an item file may hold, so that the cases make each of them hostile too. */
function fullItem(): Record<string, unknown> {
  const at = "2026-01-01T00:00:00.000Z";
  return {
    ...(witness.item as Record<string, unknown>),
    usage: { input_tokens: 10, output_tokens: 2, cache_read_tokens: 0, cost_usd: 0.01, reports: 1 },
    notes: [{ at, agent_id: "keeper", text: "tried the obvious" }],
    merged: { sha: "0".repeat(40), base: "main", strategy: "squash", at },
  };
}

function files(): fc.Arbitrary<Array<[string, string]>> {
  const validItem = fullItem();
  const validHeartbeat = { agent_id: "x", machine_id: "m", last_heartbeat: new Date().toISOString(), state: "working" };
  const item = fc
    .tuple(itemName, fc.oneof(nastyText, broken(validItem)))
    .map(([id, text]): [string, string] => [`items/${id.slice(0, 2)}/${id}.json`, text]);
  const misplaced = itemName.map((id): [string, string] => [
    `items/zz/${id}.json`,
    JSON.stringify({ ...validItem, id }),
  ]);
  const heartbeat = fc
    .tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), fc.oneof(nastyText, broken(validHeartbeat)))
    .map(([n, text]): [string, string] => [`heartbeats/${n}.json`, text]);
  const stray = fc.tuple(
    fc.constantFrom("meta.json", "items/readme", "notes/x.json", "items/ab/cd/ef.json"),
    nastyText,
  );
  return fc.uniqueArray(fc.oneof(item, misplaced, heartbeat, stray), {
    minLength: 1,
    maxLength: 6,
    selector: ([path]) => path,
  });
}

/**
 * Each heartbeat file written shows in `agents --all` (as an agent, or invalid with a reason), or — too large to
 * be read at all — in `sync.status` `invalid_files`.
 */
async function heartbeatsListed(written: Array<[string, string]>) {
  const rows = (await a.op("agents.list", { all: true })) as Array<{ agent_id: string; status: string }>;
  const skipped = new Set(((await a.op("sync.status")).invalid_files as Array<{ path: string }>).map((f) => f.path));
  for (const [path] of written.filter(([p]) => p.startsWith("heartbeats/"))) {
    const name = path.slice("heartbeats/".length, -".json".length);
    expect(rows.some((r) => r.agent_id === name) || skipped.has(path), path).toBe(true);
  }
}

/** The witness is as it was; the daemon can still create, claim and push. */
async function stillWhole(label: string) {
  expect(await a.op("item.get", { id: witness.id }), label).toEqual(witness.item);
  const fresh = await a.op("item.create", { title: "after the storm" });
  expect(await a.op("item.claim", { id: fresh.id, agent: "survivor" }), label).toMatchObject({ confirmed: true });
}

describe("hostile hub files", () => {
  test("the item the cases start from is valid and holds every field of the schema", () => {
    expect(itemSchema.parse(fullItem()) as unknown).toEqual(fullItem());
    expect(Object.keys(fullItem()).sort()).toEqual(Object.keys(itemSchema.shape).sort());
  });

  test("committed by another machine: sync skips and reports them, and goes on", async () => {
    await fc.assert(
      fc.asyncProperty(files(), async (written) => {
        execFileSync("git", ["pull", "-q", "--ff-only"], { cwd: intruder });
        for (const [path, text] of written) {
          mkdirSync(dirname(join(intruder, path)), { recursive: true });
          writeFileSync(join(intruder, path), text);
        }
        execFileSync("git", ["add", "-A"], { cwd: intruder });
        execFileSync(
          "git",
          ["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "garbage", "--allow-empty"],
          { cwd: intruder },
        );
        execFileSync("git", ["push", "-q", "origin", "drover/hub"], { cwd: intruder });

        const round = await a.op("sync.now");
        expect(round.head).toBe(execFileSync("git", ["rev-parse", "HEAD"], { cwd: intruder, encoding: "utf8" }).trim());
        const invalid = new Set(
          ((await a.op("sync.status")).invalid_files as Array<{ path: string }>).map((f) => f.path),
        );
        const items = new Set(((await a.op("items.list")) as Array<{ id: string }>).map((i) => i.id));
        for (const [path] of written.filter(([p]) => p.startsWith("items/"))) {
          const id = path
            .split("/")
            .pop()!
            .replace(/\.json$/, "");
          // an item file either became a usable item or is listed as invalid (it, or the entry standing where one of
          // its folders belongs): never silently half-read
          expect(items.has(id) || [...invalid].some((p) => path === p || path.startsWith(p + "/")), path).toBe(true);
        }
        await heartbeatsListed(written);
        await stillWhole(`after ${written.map(([p]) => p).join(", ")}`);
      }),
      { numRuns: 12 },
    );
  }, 120_000);

  test("written straight into the working hub: reconcile skips and reports them, and the view is unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(files(), async (written) => {
        const before = await a.op("items.list");
        for (const [path, text] of written) {
          const file = join(a.paths.hub, path);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, text);
        }
        const report = await a.rt.reconcile();
        expect(Object.values(report).filter((r) => "error" in r)).toEqual([]);
        await stillWhole(`after ${written.map(([p]) => p).join(", ")}`);
        await heartbeatsListed(written);
        // an item file nobody committed is kept aside under .drover/rejected, not read as an item
        for (const [path] of written.filter(([p]) => /^items\/[^/]+\/[^/]+$/.test(p)))
          expect(existsSync(join(a.paths.hub, path)), path).toBe(false);
        const after = (await a.op("items.list")) as Array<{ id: string }>;
        for (const item of before as Array<{ id: string }>) expect(after.some((i) => i.id === item.id)).toBe(true);
        for (const [path] of written) rmSync(join(a.paths.hub, path), { force: true });
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

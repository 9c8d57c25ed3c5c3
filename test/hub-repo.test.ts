/** The hub repository against real git: packs we write, repacking, diffs and history. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openRepo, type HubRepo } from "../features/sync/repo.ts";

let dir: string;
let repo: HubRepo;
const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, encoding: "utf8" });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "drover-repo-"));
  repo = await openRepo(dir, "drover/hub", { repackAfter: 5 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("hub repository", () => {
  test("commits from trees are valid git: fsck --strict, nested paths, deletions, real git reads them", async () => {
    let head: string | null = null;
    head = await repo.commit(new Map([["meta.json", '{"format":1}\n'], ["items/ab/abcde.json", "1\n"], ["items/cd/cdefg.json", "2\n"]]), { parent: head, message: "one\n", time: 1_700_000_000_000 });
    head = await repo.commit(new Map([["items/ab/abcde.json", "3\n"], ["items/cd/cdefg.json", null]]), { parent: head, message: "two\n", time: 1_700_000_001_000 });
    git("fsck", "--strict");
    expect(git("show", "drover/hub:items/ab/abcde.json")).toBe("3\n");
    expect(git("ls-tree", "-r", "--name-only", "drover/hub").trim().split("\n")).toEqual(["items/ab/abcde.json", "meta.json"]);
    expect(git("log", "--format=%s", "drover/hub").trim().split("\n")).toEqual(["two", "one"]);
    const diff = await repo.diff((await repo.log())[1]!.oid, head);
    expect(diff.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: "items/ab/abcde.json", before: "1\n", after: "3\n" },
      { path: "items/cd/cdefg.json", before: "2\n", after: null },
    ]);
  });

  test("many batch packs are repacked in the background and nothing is lost", async () => {
    let head = await repo.head();
    for (let i = 0; i < 12; i++) {
      head = await repo.commit(new Map([[`items/zz/zz${"abcdefghijkl"[i]}aa.json`, `${i}\n`]]), { parent: head, message: `c${i}\n`, time: 1_700_000_100_000 + i * 1000 });
    }
    const packs = () => readdirSync(join(dir, ".git", "objects", "pack")).filter((f) => f.endsWith(".pack")).length;
    const deadline = Date.now() + 10_000;
    while (packs() > 8 && Date.now() < deadline) await Bun.sleep(50);
    expect(packs()).toBeLessThanOrEqual(8);
    git("fsck", "--strict");
    const files = await repo.files(head!, "items/zz");
    expect(files).toHaveLength(12);
    expect(await repo.readBlob(files[11]!.oid)).toMatch(/^\d+\n$/);
  });
});

/** The hub repository against real git: packs we write, repacking, diffs and history. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLayout } from "../hub/layout.ts";
import { type HubRepo, openRepo } from "../hub/repo.ts";

let dir: string;
let repo: HubRepo;
const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, encoding: "utf8" });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "drover-repo-"));
  repo = await openRepo(dir, "drover/hub", {
    repackAfter: 5,
    layout: createLayout(["meta.json", "items/*/*"]),
    maxFileBytes: 1 << 20,
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("hub repository", () => {
  test("commits from trees are valid git: fsck --strict, nested paths, deletions, real git reads them", async () => {
    let head: string | null = null;
    head = await repo.commit(
      new Map([
        ["meta.json", '{"format":1}\n'],
        ["items/ab/abcde.json", "1\n"],
        ["items/cd/cdefg.json", "2\n"],
      ]),
      { parent: head, message: "one\n", time: 1_700_000_000_000 },
    );
    head = await repo.commit(
      new Map([
        ["items/ab/abcde.json", "3\n"],
        ["items/cd/cdefg.json", null],
      ]),
      { parent: head, message: "two\n", time: 1_700_000_001_000 },
    );
    git("fsck", "--strict");
    expect(git("show", "drover/hub:items/ab/abcde.json")).toBe("3\n");
    expect(git("ls-tree", "-r", "--name-only", "drover/hub").trim().split("\n")).toEqual([
      "items/ab/abcde.json",
      "meta.json",
    ]);
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
      head = await repo.commit(new Map([[`items/zz/zz${"abcdefghijkl"[i]}aa.json`, `${i}\n`]]), {
        parent: head,
        message: `c${i}\n`,
        time: 1_700_000_100_000 + i * 1000,
      });
    }
    const packs = () => readdirSync(join(dir, ".git", "objects", "pack")).filter((f) => f.endsWith(".pack")).length;
    // 14 commits, one pack each; a repack folds the first five (or more) into one
    const deadline = Date.now() + 10_000;
    while (packs() > 10 && Date.now() < deadline) await Bun.sleep(50);
    expect(packs()).toBeLessThanOrEqual(10);
    git("fsck", "--strict");
    const files = await repo.files(head!, "items/zz");
    expect(files).toHaveLength(12);
    expect(await repo.readBlob(files[11]!.oid)).toMatch(/^\d+\n$/);
  });
});

describe("object reader", () => {
  test("finds every object of a large repacked pack, deltified or not, byte for byte as git has it", async () => {
    const { createObjectReader } = await import("../hub/packs.ts");
    let head = await repo.head();
    const files = new Map<string, string>();
    for (let i = 0; i < 300; i++)
      files.set(
        `items/${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + ((i / 26) | 0))}/x${i}.json`,
        `{"n":${i},"body":"${"lorem ipsum ".repeat(20)}"}\n`,
      );
    head = await repo.commit(files, { parent: head, message: "many\n", time: 1_700_000_200_000 });
    // without deltas, then with them (ofs-delta chains, as a remote's packs come)
    for (const window of ["--window=0", "--window=50"]) {
      git("repack", "-a", "-d", "-f", "-q", window, "--depth=20");
      const reader = createObjectReader(join(dir, ".git"));
      const oids = git("rev-list", "--objects", "--all")
        .trim()
        .split("\n")
        .map((l) => l.split(" ")[0]!);
      expect(oids.length).toBeGreaterThan(300);
      for (const oid of oids) {
        const raw = reader.read(oid, 1 << 20);
        expect(raw).not.toBeNull();
        expect(raw!.type).toBe(git("cat-file", "-t", oid).trim() as never);
        expect(raw!.body.equals(execFileSync("git", ["cat-file", raw!.type, oid], { cwd: dir }))).toBe(true);
      }
    }
    expect(
      git(
        "verify-pack",
        "-v",
        ...readdirSync(join(dir, ".git/objects/pack"))
          .filter((f) => f.endsWith(".idx"))
          .map((f) => join(dir, ".git/objects/pack", f)),
      ),
    ).toMatch(/chain length = [1-9]/);
  });

  test("an object over the limit is refused from its header, packed or loose, before it is inflated", async () => {
    const { createObjectReader } = await import("../hub/packs.ts");
    const big = execFileSync("git", ["hash-object", "-w", "--stdin"], {
      cwd: dir,
      input: "x".repeat(5_000_000),
      encoding: "utf8",
    }).trim();
    const reader = createObjectReader(join(dir, ".git"));
    expect(() => reader.read(big, 1 << 20)).toThrow(/5000000 bytes, over the limit of 1048576/);
    git("repack", "-a", "-d", "-q", "--window=0");
    expect(() => createObjectReader(join(dir, ".git")).read(big, 1 << 20)).toThrow(/5000000 bytes, over the limit/);
    expect(createObjectReader(join(dir, ".git")).read(big, 8 << 20)!.body.length).toBe(5_000_000);
  });
});

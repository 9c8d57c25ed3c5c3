/**
 * Merge (SPEC §14) on real git repositories: each strategy's history, conflicts and red checks that leave the base
 * untouched, max_failures, two merges in a row, a base moved by someone else mid-merge, a push to a remote whose
 * base moved, a dirty checkout never touched, and a check from the shared config that waits for trust.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import type { Runtime } from "../runtime.ts";
import { firstCommit, git, tempProject, testRuntime, trustConfig } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;
const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
const of = (type: string) => events.filter((e) => e.type === type) as any[];

async function open(config = "", options: { trusted?: boolean } = { trusted: true }) {
  await Bun.write(project.paths.config, `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n${config}`);
  if (options.trusted) await trustConfig(project.paths);
  clock = manualClock("2026-10-01T09:00:00Z");
  ({ rt, events } = await testRuntime(project.paths, { clock }));
}

beforeEach(async () => {
  project = await tempProject();
  firstCommit(project.dir, { "app.txt": "one\ntwo\nthree\n" });
});
afterEach(async () => {
  await rt?.close();
  project.cleanup();
});

/** An item started by an agent, with `commits` made on its branch in its worktree, moved to merge; waits for the merge. */
async function itemInMerge(title: string, commits: Array<[file: string, text: string]>): Promise<string> {
  const id = await itemWithWork(title, commits);
  await toMerge(id);
  return id;
}

async function itemWithWork(title: string, commits: Array<[file: string, text: string]>): Promise<string> {
  const item = await op("item.create", { title });
  const started = await op("item.start", { id: item.id, agent: "a1" });
  for (const [file, text] of commits) {
    writeFileSync(join(started.path, file), text);
    git(started.path, "add", file);
    git(started.path, "commit", "-q", "-m", `${title}: ${file}`);
  }
  return item.id;
}

async function toMerge(id: string) {
  const { fence } = await op("item.get", { id });
  await op("item.move", { id, to: "merge", agent: "a1", fence });
  await rt.ctx.bus.idle();
  await rt.ctx.services.merge.drain();
  await rt.ctx.bus.idle();
}

const base = () => git(project.dir, "rev-parse", "main");
const show = (rev: string, file: string) => git(project.dir, "show", `${rev}:${file}`);
const parents = (rev: string) => git(project.dir, "rev-list", "--parents", "-n", "1", rev).split(" ").slice(1);

describe("clean merges", () => {
  for (const strategy of ["merge", "squash", "rebase"] as const) {
    test(`${strategy}: the base has the item's work, the history is the strategy's, the item is done and merged`, async () => {
      await open(`[merge]\nstrategy = "${strategy}"\n`);
      const before = base();
      const id = await itemInMerge("Add a feature", [
        ["feature.txt", "feature\n"],
        ["app.txt", "one\ntwo\nthree\nfour\n"],
      ]);
      const tip = base();
      expect(show("main", "feature.txt")).toBe("feature");
      expect(show("main", "app.txt")).toBe("one\ntwo\nthree\nfour");
      if (strategy === "merge") expect(parents(tip)).toHaveLength(2);
      if (strategy === "squash") {
        expect(parents(tip)).toEqual([before]);
        expect(git(project.dir, "log", "-1", "--format=%s", tip)).toBe(`Add a feature (item ${id})`);
      }
      if (strategy === "rebase") {
        expect(git(project.dir, "rev-list", "--merges", `${before}..${tip}`)).toBe("");
        expect(git(project.dir, "rev-list", "--count", `${before}..${tip}`)).toBe("2");
      }
      const item = await op("item.get", { id });
      expect(item).toMatchObject({ stage: "done", merged: { sha: tip, base: "main", strategy } });
      // the root checkout (main, clean) moved with its branch
      expect(readFileSync(join(project.dir, "feature.txt"), "utf8")).toBe("feature\n");
      expect(git(project.dir, "status", "--porcelain", "--untracked-files=no")).toBe("");
      // merged ⇒ the worktree and the item's branch are gone
      await rt.ctx.bus.idle();
      expect(existsSync(join(project.paths.worktrees, id))).toBe(false);
      expect(git(project.dir, "branch", "--list", `drover/item/${id}`)).toBe("");
      expect(of("merged")).toEqual([expect.objectContaining({ item_id: id, sha: tip, strategy })]);
      const log = await op<any[]>("log", { item: id });
      expect(log[0]).toMatchObject({
        op: "item.move",
        summary: `→ done, merged ${tip.slice(0, 10)} into main (${strategy})`,
      });
    });
  }
});

describe("merges that fail", () => {
  test("a conflict leaves the base untouched; the item goes back to coding with the files named", async () => {
    await open();
    const id = await itemWithWork("Change line two", [["app.txt", "one\nTWO\nthree\n"]]);
    writeFileSync(join(project.dir, "app.txt"), "one\n2\nthree\n");
    git(project.dir, "commit", "-q", "-am", "someone else's change");
    const before = base();
    await toMerge(id);
    expect(base()).toBe(before);
    const item = await op("item.get", { id });
    expect(item.stage).toBe("coding");
    expect(item.notes.at(-1).text).toContain('conflicts in "app.txt"');
    expect(of("merge_failed")).toEqual([
      expect.objectContaining({ item_id: id, kind: "conflict", files: ["app.txt"] }),
    ]);
    expect(git(project.dir, "worktree", "list")).not.toContain(join(project.paths.dir, "merge"));
  });

  test("a failing check leaves the base untouched; its exit code and output are in the note; max_failures blocks", async () => {
    await open(`[merge]\ncheck = ["sh", "-c", "echo 2 tests failed; exit 3"]\nmax_failures = 2\n`);
    const before = base();
    const id = await itemInMerge("Break it", [["feature.txt", "x\n"]]);
    expect(base()).toBe(before);
    let item = await op("item.get", { id });
    expect(item.stage).toBe("coding");
    expect(item.notes.at(-1).text).toContain("exit 3");
    expect(item.notes.at(-1).text).toContain("2 tests failed");
    await toMerge(id);
    item = await op("item.get", { id });
    expect(item.stage).toBe("blocked");
    expect(base()).toBe(before);
    expect(of("merge_failed").map((e) => [e.kind, e.exit_code, e.blocked])).toEqual([
      ["check", 3, false],
      ["check", 3, true],
    ]);
  });

  test("a check from the shared config nobody trusted never runs: the merge waits for drover trust", async () => {
    await open(`[merge]\ncheck = ["sh", "-c", "touch PWNED"]\n`, { trusted: false });
    const before = base();
    const id = await itemInMerge("Wait", [["feature.txt", "x\n"]]);
    expect(base()).toBe(before);
    expect(existsSync(join(project.paths.dir, "merge", id, "PWNED"))).toBe(false);
    expect(of("merge_waiting")).toEqual([
      expect.objectContaining({ item_id: id, reason: expect.stringContaining("drover trust") }),
    ]);
    expect((await op("item.get", { id })).stage).toBe("merge");
  });
});

describe("merges in company", () => {
  test("two items in merge at once land one after the other, in order", async () => {
    await open();
    const a = await itemWithWork("First", [["a.txt", "a\n"]]);
    const b = await itemWithWork("Second", [["b.txt", "b\n"]]);
    for (const id of [a, b]) {
      const { fence } = await op("item.get", { id });
      await op("item.move", { id, to: "merge", agent: "a1", fence });
    }
    await rt.ctx.bus.idle();
    await rt.ctx.services.merge.drain();
    expect(of("merged").map((e) => e.item_id)).toEqual([a, b]);
    expect(show("main", "a.txt")).toBe("a");
    expect(show("main", "b.txt")).toBe("b");
    const [first, second] = [await op("item.get", { id: a }), await op("item.get", { id: b })];
    expect(parents(second.merged.sha)[0]).toBe(first.merged.sha);
  });

  test("the base moved by someone else between the check and the ref update: detected, the merge redone", async () => {
    // the first check commits to main in the root checkout, as a person would while drover merges
    const intrude = `if [ ! -e "${project.dir}/.intruded" ]; then touch "${project.dir}/.intruded"; cd "${project.dir}" && echo other > other.txt && git add other.txt && git -c user.name=o -c user.email=o@x commit -q -m intruder; fi`;
    await open(`[merge]\ncheck = ["sh", "-c", ${JSON.stringify(intrude)}]\n`);
    const id = await itemInMerge("Mine", [["feature.txt", "mine\n"]]);
    const item = await op("item.get", { id });
    expect(item.stage).toBe("done");
    expect(show("main", "other.txt")).toBe("other");
    expect(show("main", "feature.txt")).toBe("mine");
    expect(git(project.dir, "log", "--format=%s", "main")).toContain("intruder");
    expect(base()).toBe(item.merged.sha);
  });

  test("a dirty root checkout is never modified: the merge waits (its check not even run), then lands once clean", async () => {
    const checks = join(project.dir, "..", `${project.dir.split("/").at(-1)}-checks`);
    await open(`[merge]\ncheck = ["sh", "-c", "echo ran >> '${checks}'"]\n`);
    writeFileSync(join(project.dir, "app.txt"), "one\ntwo\nthree\nmy local edit\n");
    const before = base();
    const id = await itemInMerge("Feature", [["feature.txt", "f\n"]]);
    expect(base()).toBe(before);
    expect(readFileSync(join(project.dir, "app.txt"), "utf8")).toBe("one\ntwo\nthree\nmy local edit\n");
    expect(existsSync(join(project.dir, "feature.txt"))).toBe(false);
    expect(of("merge_waiting")).toEqual([
      expect.objectContaining({ item_id: id, reason: expect.stringContaining("local changes") }),
    ]);
    clock.advance(6_000);
    await rt.tick();
    await rt.ctx.services.merge.drain();
    expect(existsSync(checks)).toBe(false); // waiting costs no check run
    git(project.dir, "checkout", "app.txt");
    clock.advance(6_000);
    await rt.tick();
    await rt.ctx.services.merge.drain();
    expect((await op("item.get", { id })).stage).toBe("done");
    expect(readFileSync(join(project.dir, "feature.txt"), "utf8")).toBe("f\n");
    expect(readFileSync(checks, "utf8")).toBe("ran\n");
    rmSync(checks, { force: true });
  });

  test("squash: a commit made on the branch after it was taken for landing is kept (the branch is not reset over it)", async () => {
    const late = `cd "${project.paths.worktrees}"/* && [ ! -e late.txt ] && echo late > late.txt && git add late.txt && git -c user.name=o -c user.email=o@x commit -q -m late || true`;
    await open(`[merge]\nstrategy = "squash"\ncheck = ["sh", "-c", ${JSON.stringify(late)}]\n`);
    const id = await itemInMerge("Feature", [["feature.txt", "f\n"]]);
    const item = await op("item.get", { id });
    expect(item.stage).toBe("done");
    expect(show("main", "feature.txt")).toBe("f");
    expect(git(project.dir, "log", "--format=%s", `drover/item/${id}`)).toContain("late"); // still there
    await rt.ctx.bus.idle();
    expect(existsSync(join(project.paths.worktrees, id))).toBe(true); // unmerged work: kept
  });

  test("reopened, an item no longer says where its work landed", async () => {
    await open();
    const id = await itemInMerge("Feature", [["feature.txt", "f\n"]]);
    expect((await op("item.get", { id })).merged).toBeDefined();
    await op("item.move", { id, to: "coding" });
    expect((await op("item.get", { id })).merged).toBeUndefined();
  });

  test("with push: the remote's base moved meanwhile; it is fetched, the merge redone, pushed fast-forward", async () => {
    const remote = join(project.dir, "..", `${project.dir.split("/").at(-1)}-remote.git`);
    git(project.dir, "init", "-q", "--bare", remote);
    git(project.dir, "remote", "add", "origin", remote);
    git(project.dir, "push", "-q", "origin", "main");
    const other = `${remote}-clone`;
    git(project.dir, "clone", "-q", "-b", "main", remote, other);
    // the first check pushes a teammate's commit to the remote's main: drover's push is refused, it starts again
    const teammate = `if [ ! -e "${other}/.pushed" ]; then touch "${other}/.pushed"; cd "${other}" && echo t > team.txt && git add team.txt && git -c user.name=o -c user.email=o@x commit -q -m teammate && git push -q origin main; fi`;
    await open(`[merge]\npush = true\ncheck = ["sh", "-c", ${JSON.stringify(teammate)}]\n`);
    try {
      const id = await itemInMerge("Mine", [["feature.txt", "mine\n"]]);
      const item = await op("item.get", { id });
      expect(item.stage).toBe("done");
      const theirs = git(remote, "rev-parse", "main");
      expect(theirs).toBe(item.merged.sha);
      expect(base()).toBe(theirs);
      expect(git(remote, "show", "main:team.txt")).toBe("t");
      expect(git(remote, "show", "main:feature.txt")).toBe("mine");
    } finally {
      for (const dir of [remote, other]) rmSync(dir, { recursive: true, force: true });
    }
  });
});

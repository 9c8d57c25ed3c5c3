/**
 * Merge (SPEC §14) on real git repositories: each strategy's history, conflicts and red checks that leave the base
 * untouched (the end of a check's output, in order; a check stopped at its timeout by the clock), max_failures, two
 * merges in a row and the git commands they cost, a base moved by someone else mid-merge, a push to a remote whose
 * base moved and one the remote refuses, a dirty checkout never touched, hooks and checks that never see drover's
 * secrets, and a check from the shared config that waits for trust — or runs as approved before.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import type { Runtime } from "../runtime.ts";
import { firstCommit, git, tempProject, testRuntime, trustConfig } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;
let logLines: string[];
const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
const of = (type: string) => events.filter((e) => e.type === type) as any[];

async function open(config = "", options: { trusted?: boolean } = { trusted: true }) {
  await Bun.write(project.paths.config, `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n${config}`);
  if (options.trusted) await trustConfig(project.paths);
  clock = manualClock("2026-10-01T09:00:00Z");
  logLines = [];
  ({ rt, events } = await testRuntime(project.paths, { clock, logLines }));
}

beforeEach(async () => {
  project = await tempProject();
  firstCommit(project.dir, { "app.txt": "one\ntwo\nthree\n" });
});
afterEach(async () => {
  await rt?.close();
  project.cleanup();
  for (const path of besides.splice(0)) rmSync(path, { recursive: true, force: true });
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
/** A file beside the project (outside its checkout) that a check or hook writes to; removed after the test. */
const besides: string[] = [];
function beside(name: string): string {
  const path = join(project.dir, "..", `${project.dir.split("/").at(-1)}-${name}`);
  besides.push(path);
  return path;
}

/** Moves the clock past the wait between retries and lets the queue retry its waiting merges. */
async function retryWaiting(times: number) {
  for (let i = 0; i < times; i++) {
    clock.advance(6_000);
    await rt.tick();
    await rt.ctx.services.merge.drain();
  }
}

/** A bare remote the project pushes to as `origin`, its main level with the project's; removed after the test. */
function remoteOrigin(): string {
  const remote = beside("remote.git");
  git(project.dir, "init", "-q", "--bare", remote);
  git(project.dir, "remote", "add", "origin", remote);
  git(project.dir, "push", "-q", "origin", "main");
  return remote;
}

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

  test("a failing check's note has the end of its output, stdout and stderr in the order written", async () => {
    const script = "yes | head -c 1000000; sleep 0.2; echo on-stderr >&2; sleep 0.2; echo last; exit 1";
    await open(`[merge]\ncheck = ["sh", "-c", ${JSON.stringify(script)}]\n`);
    const id = await itemInMerge("Noisy", [["feature.txt", "x\n"]]);
    const [failed] = of("merge_failed");
    expect(failed).toMatchObject({ item_id: id, kind: "check", exit_code: 1 });
    expect(failed.tail).toEndWith("y\ny\non-stderr\nlast");
    expect(Buffer.byteLength(failed.tail)).toBeLessThanOrEqual(2500);
    expect((await op("item.get", { id })).notes.at(-1).text).toEndWith("on-stderr\nlast");
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

  test("a check changed in the shared config but not yet trusted: the one approved before is in force, the item lands", async () => {
    const ran = beside("ran");
    const check = (word: string) => `[merge]\ncheck = ["sh", "-c", "echo ${word} >> '${ran}'"]\n`;
    await open(check("approved"));
    await rt.close();
    await open(check("changed"), { trusted: false });
    expect(rt.ctx.untrusted.map((u) => u.key)).toEqual(["merge.check"]);
    const id = await itemInMerge("Feature", [["feature.txt", "f\n"]]);
    expect((await op("item.get", { id })).stage).toBe("done");
    expect(readFileSync(ran, "utf8")).toBe("approved\n");
    expect(of("merge_waiting")).toEqual([]);
  });

  test("a check past check_timeout_mins on the clock is stopped: merge_failed without an exit code, the note says why", async () => {
    await open(`[merge]\ncheck = ["sh", "-c", "echo started; sleep 30"]\ncheck_timeout_mins = 1\n`);
    const before = base();
    const id = await itemWithWork("Slow", [["feature.txt", "x\n"]]);
    const { fence } = await op("item.get", { id });
    await op("item.move", { id, to: "merge", agent: "a1", fence });
    await rt.ctx.bus.idle();
    let drained = false;
    const draining = rt.ctx.services.merge.drain().then(() => (drained = true));
    // the check sleeps 30 s of real time; a minute of the clock passes in well under that
    for (let i = 0; i < 100 && !drained; i++) {
      clock.advance(20_000);
      await rt.tick();
      await Bun.sleep(50);
    }
    await draining;
    expect(base()).toBe(before);
    expect(of("merge_failed")).toEqual([
      expect.objectContaining({
        item_id: id,
        kind: "check",
        exit_code: null,
        tail: expect.stringContaining("started"),
      }),
    ]);
    const item = await op("item.get", { id });
    expect(item.stage).toBe("coding");
    expect(item.notes.at(-1).text).toContain("the check ran past its timeout and was stopped");
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

  test("landing costs few git commands: the checkout looked up twice a merge, the committer once a run", async () => {
    await open();
    const a = await itemWithWork("First", [["a.txt", "a\n"]]);
    const b = await itemWithWork("Second", [["b.txt", "b\n"]]);
    // every git command drover runs goes through a shim that writes it down
    const [shims, calls] = [beside("shims"), beside("git-calls")];
    mkdirSync(shims);
    writeFileSync(join(shims, "git"), `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${Bun.which("git")}' "$@"\n`, {
      mode: 0o755,
    });
    const path = process.env.PATH;
    process.env.PATH = `${shims}:${path}`;
    try {
      for (const id of [a, b]) {
        const { fence } = await op("item.get", { id });
        await op("item.move", { id, to: "merge", agent: "a1", fence });
      }
      await rt.ctx.bus.idle();
      await rt.ctx.services.merge.drain();
    } finally {
      process.env.PATH = path;
    }
    expect(of("merged").map((e) => e.item_id)).toEqual([a, b]);
    const ran = readFileSync(calls, "utf8").split("\n");
    const count = (start: string) => ran.filter((line) => line.startsWith(start)).length;
    expect({
      lists: count("worktree list"),
      statuses: count("status --porcelain --untracked-files=no"), // the worktrees' own checks aside
      committer: count("config --get-regexp ^user"),
    }).toEqual({ lists: 4, statuses: 4, committer: 1 });
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

  test("a dirty root checkout is never modified: the merge waits (its check not even run, not said started), then lands once clean", async () => {
    const checks = beside("checks");
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
    await retryWaiting(3);
    expect(existsSync(checks)).toBe(false); // waiting costs no check run
    expect(of("merge_started")).toEqual([]);
    expect(of("merge_waiting")).toHaveLength(1); // said once, not at every retry
    git(project.dir, "checkout", "app.txt");
    await retryWaiting(1);
    expect((await op("item.get", { id })).stage).toBe("done");
    expect(readFileSync(join(project.dir, "feature.txt"), "utf8")).toBe("f\n");
    expect(readFileSync(checks, "utf8")).toBe("ran\n");
    expect(of("merge_started")).toEqual([expect.objectContaining({ item_id: id, base: "main" })]);
  });

  test("a merge that keeps failing unexpectedly is logged once, not at every retry", async () => {
    await open();
    const id = await itemWithWork("Feature", [["feature.txt", "f\n"]]);
    rt.ctx.config.pipeline.base_branch = "-not-a-branch"; // as if approved meanwhile: the merge throws
    await toMerge(id);
    await retryWaiting(3);
    expect(logLines.filter((l) => l.includes(`Merge of item "${id}"`))).toHaveLength(1);
    expect(of("merge_waiting")).toEqual([
      expect.objectContaining({ item_id: id, reason: expect.stringContaining("-not-a-branch") }),
    ]);
  });

  test("repository hooks and the check never see drover's secrets", async () => {
    const [hookEnv, checkEnv] = [beside("hook-env"), beside("check-env")];
    const hook = join(project.dir, ".git", "hooks", "pre-merge-commit");
    writeFileSync(hook, `#!/bin/sh\nenv > '${hookEnv}'\n`, { mode: 0o755 });
    await open(`[merge]\ncheck = ["sh", "-c", "env > '${checkEnv}'"]\n`);
    const saved = process.env.DROVER_GIT_TOKEN;
    process.env.DROVER_GIT_TOKEN = "secret-of-this-machine";
    try {
      const id = await itemInMerge("Feature", [["feature.txt", "f\n"]]);
      expect((await op("item.get", { id })).stage).toBe("done");
    } finally {
      if (saved === undefined) delete process.env.DROVER_GIT_TOKEN;
      else process.env.DROVER_GIT_TOKEN = saved;
    }
    for (const file of [hookEnv, checkEnv]) {
      const env = readFileSync(file, "utf8");
      expect(env).toContain("PATH="); // it did write its environment
      expect(env).not.toContain("secret-of-this-machine");
    }
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
    const remote = remoteOrigin();
    const other = beside("clone");
    git(project.dir, "clone", "-q", "-b", "main", remote, other);
    // the first check pushes a teammate's commit to the remote's main: drover's push is refused, it starts again
    const teammate = `if [ ! -e "${other}/.pushed" ]; then touch "${other}/.pushed"; cd "${other}" && echo t > team.txt && git add team.txt && git -c user.name=o -c user.email=o@x commit -q -m teammate && git push -q origin main; fi`;
    await open(`[merge]\npush = true\ncheck = ["sh", "-c", ${JSON.stringify(teammate)}]\n`);
    const id = await itemInMerge("Mine", [["feature.txt", "mine\n"]]);
    const item = await op("item.get", { id });
    expect(item.stage).toBe("done");
    const theirs = git(remote, "rev-parse", "main");
    expect(theirs).toBe(item.merged.sha);
    expect(base()).toBe(theirs);
    expect(git(remote, "show", "main:team.txt")).toBe("t");
    expect(git(remote, "show", "main:feature.txt")).toBe("mine");
  });

  test("with push: a push the remote refuses (a hook, a protected branch) waits; the merge is not redone at once", async () => {
    const remote = remoteOrigin();
    writeFileSync(join(remote, "hooks", "pre-receive"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
    const checks = beside("checks");
    await open(`[merge]\npush = true\ncheck = ["sh", "-c", "echo ran >> '${checks}'"]\n`);
    const [before, theirs] = [base(), git(remote, "rev-parse", "main")];
    const id = await itemInMerge("Mine", [["feature.txt", "mine\n"]]);
    expect(readFileSync(checks, "utf8")).toBe("ran\n");
    expect(of("merge_waiting")).toEqual([
      expect.objectContaining({ item_id: id, reason: expect.stringContaining("pre-receive hook declined") }),
    ]);
    expect([base(), git(remote, "rev-parse", "main")]).toEqual([before, theirs]);
    expect((await op("item.get", { id })).stage).toBe("merge");
  });
});

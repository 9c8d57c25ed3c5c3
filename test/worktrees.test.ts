/** Worktrees of a real project repository, and what items cost. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import type { Item } from "../features/pipeline/item.ts";
import type { Runtime } from "../runtime.ts";
import { createApp } from "../server/app.ts";
import { cli, firstCommit, GIT_ENV, git, tempProject, testRuntime } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let logLines: string[];
const op = <T = any>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
const of = (type: string) => events.filter((e) => e.type === type) as any[];

beforeEach(async () => {
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  firstCommit(project.dir, { "README.md": "# project\n" });
  logLines = [];
  ({ rt, events } = await testRuntime(project.paths, { clock: manualClock("2026-10-01T09:00:00Z"), logLines }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

describe("worktrees", () => {
  test("item.start claims, moves into coding and makes the worktree on drover/item/<id>", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    const started = await op("item.start", { id: item.id, agent: "a1" });
    expect(started).toMatchObject({
      path: join(project.paths.worktrees, item.id),
      branch: `drover/item/${item.id}`,
      fence: 1,
      item: { stage: "coding" },
    });
    expect(git(started.path, "rev-parse", "--abbrev-ref", "HEAD")).toBe(`drover/item/${item.id}`);
    expect(git(project.dir, "worktree", "list")).toContain(started.path);
    await rt.ctx.bus.idle();
    expect(of("worktree_created")).toEqual([expect.objectContaining({ item_id: item.id, path: started.path })]);
  });

  test("a worktree carries the project's Claude hooks when they were never committed: untracked, ignored by git", async () => {
    // integrated, not committed: a session started in the worktree ran no hooks (Claude reads settings from its folder)
    expect((await cli(["integrate", "claude"], project.dir)).code).toBe(0);
    const hook = JSON.parse(readFileSync(join(project.dir, ".claude", "settings.json"), "utf8")).hooks.SessionStart[0]
      .hooks[0].command;
    const item = await op<Item>("item.create", { title: "x" });
    const { path } = await op("item.start", { id: item.id, agent: "a1" });
    const local = JSON.parse(readFileSync(join(path, ".claude", "settings.local.json"), "utf8"));
    for (const event of ["SessionStart", "PostToolUse", "Stop", "SessionEnd"]) {
      expect({ event, command: local.hooks[event][0].hooks[0].command }).toEqual({ event, command: hook });
    }
    expect(git(path, "status", "--porcelain")).toBe("");
    expect(git(project.dir, "check-ignore", "-q", "--no-index", ".claude/settings.local.json")).toBe("");

    // a worktree made before the project was integrated gets the hooks when `drover integrate claude` runs
    const other = await op<Item>("item.create", { title: "y" });
    rmSync(join(project.dir, ".claude"), { recursive: true });
    const { path: bare } = await op("item.start", { id: other.id, agent: "a2" });
    expect(existsSync(join(bare, ".claude"))).toBe(false);
    const again = await cli(["integrate", "claude"], project.dir);
    expect(again.stdout).toContain("the hooks carried into 1 worktree(s)"); // the first one has them already
    expect(existsSync(join(bare, ".claude", "settings.local.json"))).toBe(true);
    expect(git(bare, "status", "--porcelain")).toBe("");
  });

  test("the hooks cannot be carried into a new worktree: that is reported, and the worktree is drover's all the same", async () => {
    // integrated, not committed: drover carries the hooks in and tells git to ignore them, in a file of `.git/info`
    const hooks = { SessionStart: [{ hooks: [{ type: "command", command: "drover hook claude" }] }] };
    mkdirSync(join(project.dir, ".claude"));
    writeFileSync(join(project.dir, ".claude", "settings.json"), JSON.stringify({ hooks }));
    rmSync(join(project.dir, ".git", "info"), { recursive: true, force: true });
    writeFileSync(join(project.dir, ".git", "info"), "a file where git's folder was\n"); // git does without it
    const item = await op<Item>("item.create", { title: "x" });
    const started = await op("item.start", { id: item.id, agent: "a1" });
    expect(started.path).toBe(join(project.paths.worktrees, item.id));
    expect(logLines.filter((l) => l.includes(`Cannot carry the hooks into "${started.path}"`))).toHaveLength(1);
    // the folder is drover's: later rounds neither refuse it nor make it again
    expect(await rt.reconcile()).toMatchObject({ worktrees: { changed: 0 } });
    expect(await op("item.start", { id: item.id, agent: "a1" })).toMatchObject({ path: started.path });
    expect(logLines.filter((l) => l.includes("drover did not make it"))).toEqual([]);
  });

  test("a project with no commit yet: item.start says so instead of git's words", async () => {
    const empty = await tempProject({ config: '[hub]\nremote = ""\n' });
    git(empty.dir, "checkout", "-q", "-b", "trunk");
    const { rt: fresh } = await testRuntime(empty.paths);
    try {
      const item = (await fresh.ops.run("item.create", { title: "x" })) as Item;
      const err = (await fresh.ops.run("item.start", { id: item.id, agent: "a1" }).catch((e) => e)) as Error;
      expect(err.message).toBe(
        `Cannot create the worktree "${join(empty.paths.worktrees, item.id)}": the base branch "trunk" has no commit yet`,
      );
    } finally {
      await fresh.close();
      empty.cleanup();
    }
  });

  test("done after the branch was merged: removed; abandoned with uncommitted changes: kept and reported", async () => {
    const merged = await op<Item>("item.create", { title: "merged" });
    const dirty = await op<Item>("item.create", { title: "dirty" });
    const a = await op("item.start", { id: merged.id, agent: "a1" });
    const b = await op("item.start", { id: dirty.id, agent: "a2" });
    expect(a.path).not.toBe(b.path); // two agents, two working directories
    writeFileSync(join(a.path, "feature.txt"), "done\n");
    git(a.path, "add", "feature.txt");
    git(a.path, "commit", "-q", "-m", "feature");
    git(project.dir, "merge", "-q", "--no-edit", `drover/item/${merged.id}`);
    for (const to of ["qa", "merge", "done"]) await op("item.move", { id: merged.id, to });
    writeFileSync(join(b.path, "wip.txt"), "half done\n");
    await op("item.move", { id: dirty.id, to: "abandoned" });
    await rt.ctx.bus.idle();
    expect(existsSync(a.path)).toBe(false);
    expect(git(project.dir, "branch", "--list", `drover/item/${merged.id}`)).toBe("");
    expect(of("worktree_removed")).toEqual([expect.objectContaining({ item_id: merged.id })]);
    expect(existsSync(join(b.path, "wip.txt"))).toBe(true);
    expect(of("worktree_kept")).toEqual([
      expect.objectContaining({ item_id: dirty.id, reason: "uncommitted changes" }),
    ]);
    expect((await rt.reconcile()).worktrees).toEqual({ changed: 0 }); // kept stays kept, reported once
  });

  test("unmerged commits keep a worktree too", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    const s = await op("item.start", { id: item.id, agent: "a1" });
    writeFileSync(join(s.path, "f.txt"), "x\n");
    git(s.path, "add", "f.txt");
    git(s.path, "commit", "-q", "-m", "unmerged");
    await op("item.move", { id: item.id, to: "abandoned" });
    await rt.ctx.bus.idle();
    expect(of("worktree_kept")[0].reason).toBe('1 commit(s) not merged into "main" nor pushed');
  });

  test("a restart with a coding item's worktree gone recreates it; a foreign folder survives reconcile", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    const s = await op("item.start", { id: item.id, agent: "a1" });
    execFileSync("rm", ["-rf", s.path]);
    const foreign = join(project.paths.worktrees, "not-drovers");
    mkdirSync(foreign, { recursive: true });
    writeFileSync(join(foreign, "keep.txt"), "mine\n");
    await rt.close();
    ({ rt, events } = await testRuntime(project.paths, { clock: manualClock("2026-10-01T09:10:00Z") }));
    expect((await rt.reconcile()).worktrees).toEqual({ changed: 1 });
    expect(existsSync(join(s.path, "README.md"))).toBe(true);
    expect(existsSync(join(foreign, "keep.txt"))).toBe(true);
    expect((await rt.reconcile()).worktrees).toEqual({ changed: 0 });
  });

  test("drover item start --path-only prints the path alone", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    await rt.close();
    const r = await cli(
      ["item", "start", "--id", item.id, "--agent", "a1", "--path-only"],
      project.dir,
      GIT_ENV as Record<string, string>,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(join(project.paths.worktrees, item.id) + "\n");
    ({ rt, events } = await testRuntime(project.paths));
  });
});

describe("usage", () => {
  test("reports add up on the item and per agent; a terminal transition carries the final totals", async () => {
    const item = await op<Item>("item.create", { title: "x" });
    await op("usage.report", {
      agent: "a1",
      item: item.id,
      model: "m",
      input_tokens: 1000,
      output_tokens: 200,
      cost_usd: 0.012,
    });
    await op("usage.report", {
      agent: "a2",
      item: item.id,
      input_tokens: 500,
      output_tokens: 50,
      cache_read_tokens: 4000,
      cost_usd: 0.003,
    });
    await op("usage.report", { agent: "a1", input_tokens: 1, output_tokens: 1 });
    expect((await op<Item>("item.get", { id: item.id })).usage).toEqual({
      input_tokens: 1500,
      output_tokens: 250,
      cache_read_tokens: 4000,
      cost_usd: 0.015,
      reports: 2,
    });
    expect((await op<Item[]>("items.list", {}))[0]!.usage!.reports).toBe(2);
    expect(await op("usage.totals", {})).toEqual([
      expect.objectContaining({ agent: "a1", reports: 2, input_tokens: 1001, cost_usd: 0.012 }),
      expect.objectContaining({ agent: "a2", reports: 1, cache_read_tokens: 4000 }),
    ]);
    await op("item.move", { id: item.id, to: "abandoned" });
    await rt.ctx.bus.idle();
    expect(of("transition").at(-1)).toMatchObject({ to: "abandoned", usage: { input_tokens: 1500, reports: 2 } });
  });

  test("bad numbers are refused with 400", async () => {
    const app = createApp(rt, { token: "t", version: "x", startedAt: 0 });
    for (const body of [
      { agent: "a1", input_tokens: -1, output_tokens: 0 },
      { agent: "a1", input_tokens: "NaN", output_tokens: 0 },
      { agent: "a1", input_tokens: "12", output_tokens: 0 },
      { agent: "a1", input_tokens: 1.5, output_tokens: 0 },
      { agent: "a1", input_tokens: 1, output_tokens: 1, cost_usd: -0.01 },
      { agent: "a1", input_tokens: 1e300, output_tokens: 1 },
    ]) {
      const res = await app.request("/api/ops/usage.report", {
        method: "POST",
        headers: { authorization: "Bearer t" },
        body: JSON.stringify(body),
      });
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }
    const res = await app.request("/api/ops/usage.report", {
      method: "POST",
      headers: { authorization: "Bearer t" },
      body: '{"agent":"a1","input_tokens":NaN,"output_tokens":0}',
    });
    expect(res.status).toBe(400);
  });
});

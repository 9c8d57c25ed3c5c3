/**
 * Merge across a daemon's `kill -9` (SPEC §14: the base moves once or not at all): killed mid-check, the base is
 * unmoved and the restart lands the item; killed after the base moved but before the item was marked, the restart
 * finds the recorded commit on the base and finishes without merging twice — a squashed branch pointed at the
 * landing, so that its worktree goes as after any merge.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  api,
  BUN,
  CLI,
  createItem,
  type DaemonProc,
  firstCommit,
  getItem,
  git,
  startDaemonProcess,
  tempProject,
  testRuntime,
  trustConfig,
  until,
} from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
const daemons: DaemonProc[] = [];

beforeEach(async () => {
  project = await tempProject();
  firstCommit(project.dir, { "app.txt": "one\n" });
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop().catch(() => undefined);
  project.cleanup();
});

describe("merge and kill -9", () => {
  test("killed mid-check: the base is unmoved; the restart merges the item once", async () => {
    const marker = join(project.dir, ".checked-once");
    const check = `if [ ! -e "${marker}" ]; then touch "${marker}"; sleep 8; fi`;
    await Bun.write(
      project.paths.config,
      `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[merge]\ncheck = ["sh", "-c", ${JSON.stringify(check)}]\n`,
    );
    await trustConfig(project.paths);
    const before = git(project.dir, "rev-parse", "main");
    let d = await _start();
    const id = await _itemInMerge(d);
    await until(async () => existsSync(marker));
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    expect(git(project.dir, "rev-parse", "main")).toBe(before);

    d = await _start();
    await until(async () => (await getItem(d, id)).stage === "done", 15_000);
    const item = await getItem(d, id);
    expect(git(project.dir, "rev-parse", "main")).toBe(item.merged.sha);
    expect(git(project.dir, "rev-parse", `${item.merged.sha}^1`)).toBe(before); // one merge, on the old base
    expect(git(project.dir, "show", "main:feature.txt")).toBe("feature");
  }, 60_000);

  test("killed after the base moved, before the item was marked: the restart finishes it without a second merge", async () => {
    // squash: landing it again would make another commit on the base, and the branch must be re-pointed at the landing
    await Bun.write(
      project.paths.config,
      `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[merge]\nmode = "manual"\nstrategy = "squash"\n`,
    );
    let { rt } = await testRuntime(project.paths); // daemon mode: it merges
    const item = (await rt.ops.run("item.create", { title: "Feature" })) as { id: string };
    const started = (await rt.ops.run("item.start", { id: item.id, agent: "a1" })) as { path: string; fence: number };
    writeFileSync(join(started.path, "feature.txt"), "feature\n");
    git(started.path, "add", "feature.txt");
    git(started.path, "commit", "-q", "-m", "feature");
    const tip = git(started.path, "rev-parse", "HEAD");
    await rt.ops.run("item.move", { id: item.id, to: "merge", agent: "a1", fence: started.fence });
    rt.ctx.services.merge.enqueue(item.id);
    // what a daemon killed right after moving the base leaves: the queue row with its landing, the base moved
    git(project.dir, "merge", "-q", "--squash", `drover/item/${item.id}`);
    git(project.dir, "commit", "-q", "-m", `Feature (item ${item.id})`);
    const landed = git(project.dir, "rev-parse", "main");
    rt.ctx.db
      .query("UPDATE merge_queue SET state = 'running', landing = ?, landing_tip = ? WHERE item_id = ?")
      .run(landed, tip, item.id);
    await rt.close();

    ({ rt } = await testRuntime(project.paths));
    await rt.ctx.services.merge.drain();
    await rt.ctx.bus.idle();
    const after = (await rt.ops.run("item.get", { id: item.id })) as any;
    expect(after).toMatchObject({ stage: "done", merged: { sha: landed, base: "main", strategy: "squash" } });
    expect(git(project.dir, "rev-parse", "main")).toBe(landed);
    // the branch points at what landed, so it reads as merged: the worktree and the branch are gone
    expect(existsSync(started.path)).toBe(false);
    expect(git(project.dir, "branch", "--list", `drover/item/${item.id}`)).toBe("");
    await rt.close();
  });
});

// --- internal ---

async function _start(): Promise<DaemonProc> {
  const d = await startDaemonProcess([BUN, CLI], project.paths);
  daemons.push(d);
  return d;
}

async function _itemInMerge(d: DaemonProc): Promise<string> {
  const id = await createItem(d, "Feature");
  const { body: started } = await api(d.url, d.token, "/api/ops/item.start", { id, agent: "a1" });
  writeFileSync(join(started.path, "feature.txt"), "feature\n");
  git(started.path, "add", "feature.txt");
  git(started.path, "commit", "-q", "-m", "feature");
  const moved = await api(d.url, d.token, `/api/items/${id}/move`, { to: "merge", agent: "a1", fence: started.fence });
  expect(moved.status).toBe(200);
  return id;
}

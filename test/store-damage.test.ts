/**
 * A damaged `.drover/state.db` (it made every command exit 3 while `drover doctor` said all was well): found at
 * start (the daemon checks every page, commands whatever they read) and by `drover doctor`; the file is set aside,
 * what the hub holds is rebuilt, doctor names what could not be (timers, triggers), and ops this machine had not
 * yet carried to the remote go out after all.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { openRuntime } from "../runtime.ts";
import { bareRepo } from "./git-server.ts";
import { api, BUN, CLI, cli, startDaemonProcess, tempProject } from "./helpers.ts";
import { machine, remoteGit } from "./sync-machines.ts";

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

const DAMAGE: Record<string, (file: string) => void> = {
  "not a database": (f) => writeFileSync(f, "this is not a database ".repeat(400)),
  truncated: (f) => truncateSync(f, Math.floor(statSync(f).size / 3)),
  "a corrupt page": (f) => {
    const fd = openSync(f, "r+");
    writeSync(fd, Buffer.alloc(16 * 1024, 0x41), 0, 16 * 1024, Math.floor(statSync(f).size / 2 / 4096) * 4096);
    closeSync(fd);
  },
};

async function projectWithWork() {
  const project = await tempProject({
    config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nworktrees = false\n',
  });
  cleanup.push(project.cleanup);
  const rt = await openRuntime({ paths: project.paths, mode: "cli" });
  const ids: string[] = [];
  for (let i = 0; i < 60; i++)
    ids.push(((await rt.ops.run("item.create", { title: `item ${i}`, body: "x".repeat(2000) })) as { id: string }).id);
  await rt.ops.run("timer.add", { in: "2h", prompt: "later" });
  await rt.close();
  return { project, ids };
}

describe("a damaged state.db", () => {
  for (const [kind, damage] of Object.entries(DAMAGE)) {
    test(`${kind}: doctor finds it, sets it aside, rebuilds what the hub holds and names what is lost; commands work again`, async () => {
      const { project, ids } = await projectWithWork();
      damage(project.paths.db);
      const doctor = await cli(["doctor", "--json"], project.dir);
      const state = JSON.parse(doctor.stdout).find((c: { check: string }) => c.check === "state");
      expect(state.ok).toBe(false);
      expect(state.detail).toMatch(/set aside and rebuilt from the hub; .*timers, triggers, .* could not be rebuilt/);
      expect(readdirSync(`${project.paths.dir}`).some((f) => f.startsWith("state.db.damaged-"))).toBe(true);
      const list = await cli(["items", "list", "--json"], project.dir);
      expect(list.code).toBe(0);
      expect(
        JSON.parse(list.stdout)
          .map((i: { id: string }) => i.id)
          .sort(),
      ).toEqual([...ids].sort());
      expect(JSON.parse((await cli(["timer", "list", "--json"], project.dir)).stdout)).toEqual([]);
      // and doctor keeps saying what happened
      const again = JSON.parse((await cli(["doctor", "--json"], project.dir)).stdout).find(
        (c: { check: string }) => c.check === "state",
      );
      expect(again).toMatchObject({
        ok: true,
        detail: expect.stringMatching(/^ok; rebuilt from the hub at .* timers, triggers/),
      });
    }, 60_000);
  }

  test("a command that meets the damage says what to run, in one line; one that opens a file that is no database repairs it", async () => {
    const { project } = await projectWithWork();
    DAMAGE["a corrupt page"]!(project.paths.db);
    const list = await cli(["items", "list"], project.dir);
    if (list.code !== 0) {
      expect(list.code).toBe(3);
      expect(list.stderr.trim()).toMatch(
        /^drover: Cannot use ".drover\/state.db": it is damaged \(.*\): run "drover doctor", which sets it aside and rebuilds it from the hub$/,
      );
    }
    DAMAGE["not a database"]!(project.paths.db);
    const create = await cli(["item", "create", "--title", "after the damage"], project.dir);
    expect(create.code).toBe(0);
    expect(create.stderr).toContain("was damaged and is rebuilt from the hub");
  }, 60_000);

  test("the daemon checks every page at start: it rebuilds, serves the hub's items, and doctor reports it", async () => {
    const { project, ids } = await projectWithWork();
    DAMAGE["a corrupt page"]!(project.paths.db);
    const daemon = await startDaemonProcess([BUN, CLI], project.paths);
    try {
      const items = (await api(daemon.url, daemon.token, "/api/items")).body as Array<{ id: string }>;
      expect(items.map((i) => i.id).sort()).toEqual([...ids].sort());
      const state = JSON.parse((await cli(["doctor", "--json"], project.dir)).stdout).find(
        (c: { check: string }) => c.check === "state",
      );
      expect(state).toMatchObject({ ok: true, detail: expect.stringContaining("rebuilt from the hub") });
    } finally {
      await daemon.stop();
    }
  }, 60_000);

  test("ops the lost outbox still held go out to the remote after the rebuild", async () => {
    const remote = bareRepo();
    cleanup.push(() => rmSync(remote.root, { recursive: true, force: true }));
    const m = await machine(remote.path, {
      config: `[hub]\nremote = "/nonexistent/offline.git"\n[pipeline]\nworktrees = false\n`,
      trusted: true,
    });
    const made = await m.op("item.create", { title: "made offline" });
    expect((await m.op("sync.status")).pending_ops).toBe(1);
    const paths = m.paths;
    await m.rt.close();
    DAMAGE["not a database"]!(paths.db);
    // the remote is back (the project's origin; the approvals went with the damaged file)
    await Bun.write(paths.config, `[hub]\nremote = "origin"\n[pipeline]\nworktrees = false\n`);
    const rt = await openRuntime({ paths, mode: "cli" });
    try {
      expect(rt.damage).toBeDefined();
      await rt.ops.run("sync.now", {});
      expect(remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")).toContain(`${made.id}.json`);
    } finally {
      await rt.close();
      rmSync(m.dir, { recursive: true, force: true });
    }
  }, 60_000);
});

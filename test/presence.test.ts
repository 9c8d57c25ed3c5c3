/**
 * SPEC §15 presence: heartbeats travel on each machine's own ref (`drover/presence/<machine>`), never on the shared
 * branch; an older drover's heartbeats on the shared branch are still read (a mixed team), this machine's own are
 * taken off it; what another machine's ref carries is input like any tree from the remote. Both transports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { readWorking } from "../hub/working.ts";
import { bareRepo, type GitServer, startGitServer } from "./git-server.ts";
import { blob, type Entry, git, pushTree } from "./intruder.ts";
import { type Machine, machine, remoteGit } from "./sync-machines.ts";

const TRANSPORTS = ["isomorphic-git (http)", "git (path)"] as const;

for (const transport of TRANSPORTS) {
  describe(`presence over ${transport}`, () => {
    let remote: { root: string; path: string };
    let server: GitServer | null = null;
    let url: string;
    let a: Machine;
    let b: Machine;
    const count = (ref: string) => Number(remoteGit(remote.path, "rev-list", "--count", ref));
    const presenceOf = (m: Machine) => `drover/presence/${m.rt.ctx.hub.presence.machine}`;
    const beat = (m: Machine, agent: string) => m.op("heartbeat", { agent });
    const working = (m: Machine, agent: string) => readWorking(m.paths.hub, `heartbeats/${agent}.json`);

    beforeAll(async () => {
      remote = bareRepo();
      if (transport.startsWith("isomorphic")) {
        server = startGitServer(remote.root);
        url = server.url("remote.git");
      } else url = remote.path;
      a = await machine(url);
      b = await machine(url);
    });
    afterAll(async () => {
      for (const m of [a, b]) await m.cleanup();
      await server?.stop();
      rmSync(remote.root, { recursive: true, force: true });
    });

    test("a heartbeat reaches the other machine on its sender's presence ref; the shared branch never sees it", async () => {
      await a.op("sync.now");
      const shared = count("drover/hub");
      await beat(a, "a-agent");
      await a.op("sync.now");
      await b.op("sync.now");
      expect(JSON.parse(working(b, "a-agent")!)).toMatchObject({ agent_id: "a-agent", machine_id: a.rt.ctx.machineId });
      const seen = (await b.op("agents.list", {})) as Array<{ agent_id: string }>;
      expect(seen.map((x) => x.agent_id)).toContain("a-agent");
      // the next one replaces the ref's one commit: the remote keeps no history of heartbeats
      const first = remoteGit(remote.path, "rev-parse", presenceOf(a));
      await beat(a, "a-agent");
      await a.op("sync.now");
      await b.op("sync.now");
      expect(remoteGit(remote.path, "rev-parse", presenceOf(a))).not.toBe(first);
      expect(count(presenceOf(a))).toBe(1);
      expect(working(b, "a-agent")).toBe(working(a, "a-agent"));
      expect(count("drover/hub")).toBe(shared);
      expect(remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")).not.toContain("heartbeats/");
    });

    test("a mixed team: an older drover's heartbeats on the shared branch are read; this machine's own are taken off it", async () => {
      const heartbeat = (agent: string, machineId: string, at: string) =>
        JSON.stringify({
          agent_id: agent,
          machine_id: machineId,
          last_heartbeat: at,
          active_item_id: null,
          state: "idle",
        });
      const now = new Date().toISOString();
      pushTree(remote.path, [
        {
          label: "an older drover's heartbeat",
          path: "heartbeats/old-agent.json",
          entry: _file(remote.path, heartbeat("old-agent", "old-host-1234", now)),
        },
        // what this machine's older self left there, before it moved to a presence ref
        {
          label: "this machine's, from before",
          path: "heartbeats/a-before.json",
          entry: _file(remote.path, heartbeat("a-before", a.rt.ctx.machineId, "2026-01-01T00:00:00.000Z")),
        },
      ]);
      await a.op("sync.now"); // reads both; a sweep is made to take its own off
      await b.op("sync.now");
      for (const m of [a, b]) {
        const ids = ((await m.op("agents.list", { all: true })) as Array<{ agent_id: string }>).map((x) => x.agent_id);
        expect(ids).toContain("old-agent");
      }
      await a.op("sync.now");
      const files = remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub");
      expect(files).toContain("heartbeats/old-agent.json");
      expect(files).not.toContain("heartbeats/a-before.json");
      expect(remoteGit(remote.path, "log", "-1", "--format=%B", "drover/hub")).toContain('"hub.sweep"');
      expect((await a.op("sync.status")).pending_ops).toBe(0);
    });

    test("another machine's ref is input: files naming someone else, paths that are not presence, links are refused", async () => {
      const intruder = "intruder-0000";
      const hb = (agent: string, machineId: string) =>
        JSON.stringify({
          agent_id: agent,
          machine_id: machineId,
          last_heartbeat: new Date().toISOString(),
          active_item_id: null,
          state: "working",
        });
      const tree = _tree(remote.path, {
        "intruder-agent.json": { mode: "100644", oid: blob(remote.path, hb("intruder-agent", intruder)) },
        // a heartbeat of a's own agent, newer than a's: that would let one machine speak for another
        "a-agent.json": { mode: "100644", oid: blob(remote.path, hb("a-agent", a.rt.ctx.machineId)) },
        "linked.json": { mode: "120000", oid: blob(remote.path, "/etc/passwd") },
      });
      const items = git(
        remote.path,
        ["mktree"],
        `040000 tree ${tree}\theartbeats\n100644 blob ${blob(remote.path, "{}")}\tmeta.json\n`,
      );
      const commit = git(remote.path, ["-c", "user.name=i", "-c", "user.email=i@x", "commit-tree", items, "-m", "p"]);
      git(remote.path, ["update-ref", `refs/heads/drover/presence/${intruder}`, commit]);
      const before = working(b, "a-agent");
      await b.op("sync.now");
      expect(JSON.parse(working(b, "intruder-agent")!).machine_id).toBe(intruder);
      expect(working(b, "a-agent")).toBe(before);
      expect(working(b, "linked")).toBeNull();
      const invalid = ((await b.op("sync.status")).invalid_files as Array<{ path: string; reason: string }>).filter(
        (f) => f.path.startsWith(`drover/presence/${intruder}:`),
      );
      expect(invalid.map((f) => [f.path.split(":")[1], f.reason]).sort()).toEqual([
        ["heartbeats/a-agent.json", `it is not machine "${intruder}"'s own file`],
        ["heartbeats/linked.json", "a symbolic link where a regular file belongs"],
        ["meta.json", "it is not a presence file"],
      ]);
      expect(readWorking(b.paths.hub, "meta.json")).not.toBe("{}");
    });
  });
}

function _file(bare: string, content: string): Entry {
  return { mode: "100644", type: "blob", oid: blob(bare, content) };
}

function _tree(bare: string, entries: Record<string, { mode: string; oid: string }>): string {
  const lines = Object.entries(entries).map(([name, e]) => `${e.mode} blob ${e.oid}\t${name}\n`);
  return git(bare, ["mktree"], lines.join(""));
}

/**
 * SPEC §15 presence: heartbeats travel on each machine's own ref (`drover/presence/<machine>`), never on the shared
 * branch; an older drover's heartbeats on the shared branch are still read (a mixed team), this machine's own are
 * taken off it; what another machine's ref carries is input like any tree from the remote. Both transports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { readWorking } from "../hub/working.ts";
import { bareRepo, type GitServer, startGitServer } from "./git-server.ts";
import { hostileRuns } from "./helpers.ts";
import { blob, type Entry, git, HOSTILE, hostileEntry, hubPaths, pushPresence, pushTree } from "./intruder.ts";
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
    /** What the machine lists as refused from the intruder's presence ref. */
    const refused = async (m: Machine) =>
      ((await m.op("sync.status")).invalid_files as Array<{ path: string; reason: string }>).filter((f) =>
        f.path.startsWith(`drover/presence/${INTRUDER}:`),
      );

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
      const file = (content: string) => _file(remote.path, content);
      pushPresence(remote.path, INTRUDER, [
        {
          label: "its own",
          path: "heartbeats/intruder-agent.json",
          entry: file(_heartbeat("intruder-agent", INTRUDER)),
        },
        // a heartbeat of a's agent, newer than a's: that would let one machine speak for another
        { label: "a's", path: "heartbeats/a-agent.json", entry: file(_heartbeat("a-agent", a.rt.ctx.machineId)) },
        { label: "link", path: "heartbeats/linked.json", entry: hostileEntry(remote.path, "symlink") },
        { label: "not presence", path: "meta.json", entry: file("{}") },
      ]);
      const before = working(b, "a-agent");
      await b.op("sync.now");
      expect(JSON.parse(working(b, "intruder-agent")!).machine_id).toBe(INTRUDER);
      expect(working(b, "a-agent")).toBe(before);
      expect(working(b, "linked")).toBeNull();
      expect((await refused(b)).map((f) => [f.path.split(":")[1], f.reason]).sort()).toEqual([
        ["heartbeats/a-agent.json", `it is not machine "${INTRUDER}"'s own file`],
        ["heartbeats/linked.json", "a symbolic link where a regular file belongs"],
        ["meta.json", "it is not a presence file"],
      ]);
      expect(readWorking(b.paths.hub, "meta.json")).not.toBe("{}");
    });

    test("generated hostile presence refs: refused and listed, never on disk, never speaking for another machine; sync goes on", async () => {
      await beat(b, "b-agent");
      await b.op("sync.now");
      const paths = [...hubPaths([]), "heartbeats/b-agent.json", "heartbeats/x.json", "heartbeats/..json"];
      const kinds = [...HOSTILE, "foreign", "own", null] as const;
      const mutation = fc.record({ path: fc.constantFrom(...paths), kind: fc.constantFrom(...kinds) });
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(mutation, { minLength: 1, maxLength: 5, selector: (m) => m.path }),
          async (picked) => {
            const mutations = picked.map((p) => ({
              path: p.path,
              label: p.kind ?? "removed",
              entry:
                p.kind === "foreign" || p.kind === "own"
                  ? _file(remote.path, _heartbeat(_agentOf(p.path), p.kind === "own" ? INTRUDER : b.rt.ctx.machineId))
                  : p.kind
                    ? hostileEntry(remote.path, p.kind, { bombBytes: 32 * 1024 * 1024 })
                    : null,
            }));
            const label = mutations.map((m) => `${m.path}=${m.label}`).join(", ");
            const own = working(b, "b-agent");
            const rss = process.memoryUsage().rss;
            const pushed = pushPresence(remote.path, INTRUDER, mutations);
            // a later mutation may have replaced an earlier one's folder
            const there = (path: string, oid?: string) =>
              oid !== undefined && git(remote.path, ["ls-tree", pushed, "--", path]).includes(oid);
            expect((await b.op("sync.now")).head, label).toBe(remoteGit(remote.path, "rev-parse", "drover/hub"));
            expect(working(b, "b-agent"), label).toBe(own);
            for (const name of readdirSync(join(b.paths.hub, "heartbeats"))) {
              const stat = lstatSync(join(b.paths.hub, "heartbeats", name));
              expect(stat.isFile() && stat.size < 16 * 1024, `${name} (${label})`).toBe(true);
            }
            const hubRoot = [".git", "heartbeats", "items", "meta.json"];
            expect(
              readdirSync(b.paths.hub).filter((n) => !hubRoot.includes(n)),
              label,
            ).toEqual([]);
            const listed = (await refused(b)).map((f) => f.path.split(":")[1]!);
            for (const m of mutations.filter((m) => m.label !== "own" && there(m.path, m.entry?.oid))) {
              const related = (p: string) => p === m.path || p.startsWith(m.path + "/") || m.path.startsWith(p + "/");
              expect(listed.some(related), `${m.path}=${m.label} listed (${label}): ${listed.join(", ")}`).toBe(true);
            }
            // and nothing that an earlier commit of that ref held and this one no longer does
            for (const path of listed)
              expect(git(remote.path, ["ls-tree", pushed, "--", path]), `${path} still listed (${label})`).not.toBe("");
            const valid = /^heartbeats\/[a-z][a-z0-9-]*\.json$/;
            for (const m of mutations.filter(
              (m) => m.label === "own" && valid.test(m.path) && there(m.path, m.entry?.oid),
            ))
              expect(JSON.parse(working(b, _agentOf(m.path))!).machine_id, label).toBe(INTRUDER);
            expect(process.memoryUsage().rss - rss, `memory after ${label}`).toBeLessThan(256 * 1024 * 1024);
          },
        ),
        { numRuns: hostileRuns(transport.startsWith("isomorphic") ? 6 : 10), endOnFailure: true },
      );
    }, 300_000);
  });
}

const INTRUDER = "intruder-0000";

function _heartbeat(agent: string, machineId: string): string {
  const at = new Date().toISOString();
  return JSON.stringify({
    agent_id: agent,
    machine_id: machineId,
    last_heartbeat: at,
    active_item_id: null,
    state: "working",
  });
}

/** The agent a heartbeat path names. */
function _agentOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1).replace(/\.json$/, "");
}

function _file(bare: string, content: string): Entry {
  return { mode: "100644", type: "blob", oid: blob(bare, content) };
}

/**
 * Hostile remote hub trees, on both transports: a teammate's push holding a file where a folder belongs (and the
 * other way round) at every level, symbolic links, submodules, executables, oversized and bomb blobs, odd names;
 * rewinds and rewrites of the branch. Every case: the round goes on, nothing hostile reaches the disk, what it
 * cannot read is listed in `sync.status`, local ops keep working, and no confirmed op disappears without a trace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import fc from "fast-check";
import { bareRepo, type GitServer, startGitServer } from "./git-server.ts";
import { api, BUN, CLI, hostileRuns, startDaemonProcess, trustConfig } from "./helpers.ts";
import { git, HOSTILE, hostileEntry, hubPaths, type Mutation, pushTree, rewind, rewrite } from "./intruder.ts";
import { joinedProject, type Machine, machine } from "./sync-machines.ts";

const CONFIG = (remote: string) => `[hub]\nremote = "${remote}"\n[pipeline]\nworktrees = false\nauto_assign = false\n`;

for (const transport of ["git", "http"] as const) {
  describe(`a hostile remote over ${transport === "http" ? "isomorphic-git (http)" : "git (path)"}`, () => {
    let remote: { root: string; path: string };
    let server: GitServer | undefined;
    let url: string;
    let a: Machine;
    let b: Machine;

    beforeAll(async () => {
      remote = bareRepo();
      if (transport === "http") server = startGitServer(remote.root);
      url = server ? server.url("remote.git") : remote.path;
      a = await machine(url, { config: CONFIG(url), trusted: true });
      b = await machine(url, { config: CONFIG(url), trusted: true });
    });
    afterAll(async () => {
      await a.cleanup();
      await b.cleanup();
      await server?.stop();
    });

    /** A round that must succeed and land on the remote's head. */
    async function synced(m: Machine) {
      const round = await m.op("sync.now");
      expect(round.head).toBe(git(remote.path, ["rev-parse", "refs/heads/drover/hub"]));
      return round;
    }

    async function invalidPaths(m: Machine): Promise<string[]> {
      return ((await m.op("sync.status")).invalid_files as Array<{ path: string }>).map((f) => f.path);
    }

    /** Create + claim on the machine still work and reach the remote. */
    async function stillWorks(m: Machine, label: string) {
      const fresh = await m.op("item.create", { title: `after ${label}` });
      expect(await m.op("item.claim", { id: fresh.id, agent: "survivor" }), label).toMatchObject({ confirmed: true });
    }

    test("a file where the heartbeats or an items folder belongs stops neither sync nor ops (it stopped every machine with EISDIR)", async () => {
      const item = await a.op("item.create", { title: "in the shard" });
      await synced(a);
      await synced(b);
      const entry = hostileEntry(remote.path, "file");
      const clean = git(remote.path, ["rev-parse", "refs/heads/drover/hub^{tree}"]);
      pushTree(remote.path, [
        { path: "heartbeats", entry, label: "file" },
        { path: `items/${item.id.slice(0, 2)}`, entry, label: "file" },
      ]);
      for (const m of [a, b]) {
        await synced(m);
        // listed while the remote still holds it (a machine's next commit that rewrites that folder repairs it)
        const invalid = await invalidPaths(m);
        for (const path of ["heartbeats", `items/${item.id.slice(0, 2)}`]) {
          if (_stillThere(remote.path, path, entry)) expect(invalid).toContain(path);
        }
        await m.op("heartbeat", { agent: `beat-${transport}` });
        await stillWorks(m, "a file where a folder belongs");
        expect(lstatSync(join(m.paths.hub, "heartbeats")).isDirectory()).toBe(true);
      }
      putTreeBack(remote.path, clean);
    });

    test("generated hostile trees: skipped, listed, never on disk; the round and local ops go on; a fix clears the list", async () => {
      const witness = await a.op("item.create", { title: "precious", labels: ["keep"] });
      await a.op("item.claim", { id: witness.id, agent: "keeper" });
      await synced(b);
      const kept = await a.op("item.get", { id: witness.id });
      const mutation = fc.record({
        path: fc.constantFrom(...hubPaths([witness.id])),
        kind: fc.constantFrom(...HOSTILE, null),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(mutation, { minLength: 1, maxLength: 4, selector: (m) => m.path }),
          async (picked) => {
            const cleanTree = git(remote.path, ["rev-parse", "refs/heads/drover/hub^{tree}"]);
            const mutations: Mutation[] = picked.map((p) => ({
              path: p.path,
              entry: p.kind ? hostileEntry(remote.path, p.kind, { bombBytes: 32 * 1024 * 1024 }) : null,
              label: p.kind ?? "removed",
            }));
            pushTree(remote.path, mutations);
            const label = mutations.map((m) => `${m.path}=${m.label}`).join(", ");
            const rss = process.memoryUsage().rss;
            for (const m of [a, b]) {
              await synced(m);
              _onlyLayoutFiles(m.paths.hub, label);
              const invalid = await invalidPaths(m);
              for (const mu of mutations.filter(
                (x) => x.entry && _isHostileThere(x) && _stillThere(remote.path, x.path, x.entry),
              )) {
                const related = (p: string) =>
                  mu.path === p || mu.path.startsWith(p + "/") || p.startsWith(mu.path + "/");
                expect(invalid.some(related), `${mu.path} listed (${label}): ${invalid.join(", ")}`).toBe(true);
              }
              const untouched = !mutations.some((mu) => itemPathOf(witness.id).startsWith(mu.path));
              if (untouched) expect(await m.op("item.get", { id: witness.id }), label).toEqual(kept);
              await stillWorks(m, label);
            }
            expect(process.memoryUsage().rss - rss, `memory after ${label}`).toBeLessThan(256 * 1024 * 1024);
            // a teammate puts the tree back: what was listed is forgotten, and the witness is back where it was
            putTreeBack(remote.path, cleanTree);
            for (const m of [a, b]) {
              await synced(m);
              expect(await invalidPaths(m), label).toEqual([]);
              expect(await m.op("item.get", { id: witness.id }), label).toEqual(kept);
            }
          },
        ),
        { numRuns: hostileRuns(transport === "http" ? 4 : 8), endOnFailure: true },
      );
    }, 300_000);

    test("a rewound branch is pushed back: confirmed items stay, hub_restored says so (they vanished silently)", async () => {
      await synced(a);
      const made = [];
      for (let i = 0; i < 3; i++) made.push(await a.op("item.create", { title: `confirmed ${i}` }));
      await synced(a);
      await synced(b);
      const confirmed = git(remote.path, ["rev-parse", "refs/heads/drover/hub"]);
      rewind(remote.path, 1);
      const events = a.events.length;
      await a.op("sync.now");
      expect(git(remote.path, ["rev-parse", "refs/heads/drover/hub"])).toBe(confirmed);
      expect(a.events.slice(events).filter((e) => e.type === "hub_restored")).toHaveLength(1);
      expect((await a.op("sync.status")).last_error).toBeNull();
      for (const m of [a, b]) {
        await synced(m);
        for (const item of made) expect((await m.op("item.get", { id: item.id })).title).toBe(item.title);
      }
    });

    test("a rewound branch goes back to the newest head any machine confirmed, even when a machine that saw less rounds first", async () => {
      await synced(a);
      await synced(b);
      const first = await a.op("item.create", { title: "seen by both" });
      await synced(a);
      await synced(b); // b confirmed up to here
      const second = await a.op("item.create", { title: "seen by a only" });
      await synced(a); // a's push also moved a's confirmed-head ref
      rewind(remote.path, 2);
      const fromB = await b.op("item.create", { title: "b, after the rewind" });
      await b.op("sync.now"); // b rounds first: it must not build on the rewound head nor on its own older one
      for (const m of [a, b]) await synced(m);
      const tree = git(remote.path, ["ls-tree", "-r", "--name-only", "refs/heads/drover/hub"]);
      for (const item of [first, second, fromB]) expect(tree).toContain(`${item.id}.json`);
      for (const m of [a, b]) expect(await m.op("sync.status")).toMatchObject({ diverged: null, last_error: null });
      expect(b.events.filter((e) => e.type === "hub_restored")).not.toHaveLength(0);
    });

    test("a fork a rewind left behind (another machine's push landed on the rewound head) heals: this machine's ops go in again", async () => {
      await synced(a);
      const theirs = await b.op("item.create", { title: "b's, before" });
      await synced(b);
      await synced(a);
      const fork = git(remote.path, ["rev-parse", "refs/heads/drover/hub"]);
      const ours = await a.op("item.create", { title: "a's, confirmed then forked away" });
      await synced(a);
      // what an ABA race leaves: the branch rewound to the fork point and a drover commit of another machine on it
      const message = git(remote.path, ["log", "-1", "--format=%B", fork]);
      const other = git(remote.path, [
        "-c",
        "user.name=d",
        "-c",
        "user.email=d@x",
        "commit-tree",
        `${fork}^{tree}`,
        "-p",
        fork,
        "-m",
        message,
      ]);
      git(remote.path, ["update-ref", "refs/heads/drover/hub", other]);
      await a.op("sync.now");
      expect(await a.op("sync.status")).toMatchObject({ diverged: null, last_error: null });
      const tree = git(remote.path, ["ls-tree", "-r", "--name-only", "refs/heads/drover/hub"]);
      for (const item of [theirs, ours]) expect(tree).toContain(`${item.id}.json`);
      git(remote.path, ["merge-base", "--is-ancestor", other, "refs/heads/drover/hub"]);
      await synced(b);
      expect((await b.op("item.get", { id: ours.id })).title).toBe(ours.title);
    });

    test("a rewritten branch stops sync with hub_diverged, local ops go on; sync adopt sends this machine's lost ops again", async () => {
      await synced(a);
      await synced(b);
      const lost = await a.op("item.create", { title: "confirmed, then rewritten away" });
      await synced(a);
      await synced(b);
      rewrite(remote.path, { stepsBack: 1 });
      const events = a.events.length;
      await expect(a.op("sync.now")).rejects.toThrow(/rewritten.*drover sync adopt/);
      expect(a.events.slice(events).filter((e) => e.type === "hub_diverged")).toHaveLength(1);
      const status = await a.op("sync.status");
      expect(status.diverged).toMatchObject({ remote: git(remote.path, ["rev-parse", "refs/heads/drover/hub"]) });
      expect(status.last_error).toMatch(/rewritten/);
      // local ops keep working while a person decides; a second refusal publishes nothing new
      const meanwhile = await a.op("item.create", { title: "made while diverged" });
      await expect(a.op("sync.now")).rejects.toThrow(/rewritten/);
      expect(a.events.slice(events).filter((e) => e.type === "hub_diverged")).toHaveLength(1);
      await expect(a.rt.ops.run("sync.adopt", {}, { via: "http" })).rejects.toThrow(/person's choice/);
      await a.rt.ops.run("sync.adopt", {}, { via: "cli" });
      expect((await a.op("sync.status")).diverged).toBeNull();
      const tree = git(remote.path, ["ls-tree", "-r", "--name-only", "refs/heads/drover/hub"]);
      for (const item of [lost, meanwhile]) expect(tree).toContain(`${item.id}.json`);
      expect(git(remote.path, ["ls-tree", "-r", "--name-only", "refs/heads/drover/hub"])).toContain(
        "heartbeats/rewriter.json",
      );
      expect(readdirSync(join(a.paths.hub, ".git/refs/drover/diverged")).some((r) => r.startsWith("local-"))).toBe(
        true,
      );
      // the other machine saw the rewrite too: it restores nothing by itself, but it follows once its own choice is made
      await expect(b.op("sync.now")).rejects.toThrow(/rewritten/);
      await b.rt.ops.run("sync.adopt", {}, { via: "cli" });
      await synced(b);
      expect((await b.op("item.get", { id: lost.id })).title).toBe(lost.title);
    });

    test("sync restore forces this machine's confirmed history back onto a rewritten branch", async () => {
      await synced(a);
      await synced(b);
      const item = await a.op("item.create", { title: "kept by restore" });
      await synced(a);
      const confirmed = git(remote.path, ["rev-parse", "refs/heads/drover/hub"]);
      const { to } = rewrite(remote.path, { stepsBack: 2 });
      await expect(a.op("sync.now")).rejects.toThrow(/rewritten/);
      await a.rt.ops.run("sync.restore", {}, { via: "cli" });
      expect(await a.rt.ops.run("sync.status", {})).toMatchObject({ diverged: null, last_error: null });
      const head = git(remote.path, ["rev-parse", "refs/heads/drover/hub"]);
      git(remote.path, ["merge-base", "--is-ancestor", confirmed, head]); // throws when it is not
      expect(readdirSync(join(a.paths.hub, ".git/refs/drover/diverged"))).toContain(`remote-${to.slice(0, 12)}`);
      await synced(b);
      expect((await b.op("item.get", { id: item.id })).title).toBe(item.title);
    });
  });
}

// --- internal ---

/** A teammate's fix: a commit on the remote's head whose tree is `tree` again. */
function putTreeBack(bare: string, tree: string) {
  const head = git(bare, ["rev-parse", "refs/heads/drover/hub"]);
  const fixed = git(bare, ["-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree, "-p", head, "-m", "fix"]);
  git(bare, ["update-ref", "refs/heads/drover/hub", fixed, head]);
}

/** Whether the remote's head still holds `entry` at `path` (a machine's commit may have replaced it since). */
function _stillThere(bare: string, path: string, entry: { oid: string } | null): boolean {
  const line = git(bare, ["ls-tree", "-z", "refs/heads/drover/hub", "--", path]).split("\0")[0] ?? "";
  return line !== "" && entry !== null && line.split(/\s/)[2] === entry.oid;
}

function itemPathOf(id: string): string {
  return `items/${id.slice(0, 2)}/${id}.json`;
}

/** Whether the mutation put something the layout refuses: anything but a small plain file where a file belongs, or a folder where a folder belongs. */
function _isHostileThere(m: Mutation): boolean {
  const plain = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  const parts = m.path.split("/");
  if (!parts.every((p) => plain.test(p) && !p.includes(".."))) return true;
  const fileSlot = /^(meta\.json|heartbeats\/[^/]+|items\/[^/]+\/[^/]+)$/.test(m.path);
  const dirSlot = /^(heartbeats|items|items\/[^/]+)$/.test(m.path);
  if (dirSlot) return m.label !== "folder";
  if (fileSlot)
    return !(m.entry!.mode === "100644" && m.entry!.type === "blob" && m.label !== "oversized" && m.label !== "bomb");
  return true;
}

/** The working hub holds only folders and regular files at the layout's places, none over the size limit. */
function _onlyLayoutFiles(hub: string, label: string) {
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      const rel = relative(hub, path);
      if (rel === ".git") continue;
      const st = lstatSync(path);
      expect(st.isDirectory() || st.isFile(), `${rel} is a plain file or folder (${label})`).toBe(true);
      if (st.isDirectory()) {
        expect(
          ["heartbeats", "items"].includes(rel) || /^items\/[^/]+$/.test(rel),
          `${rel} is a hub folder (${label})`,
        ).toBe(true);
        walk(path);
      } else {
        expect(
          /^(meta\.json|heartbeats\/[^/]+|items\/[^/]+\/[^/]+)$/.test(rel),
          `${rel} is a hub file (${label})`,
        ).toBe(true);
        expect(st.size, `${rel} size (${label})`).toBeLessThanOrEqual(1024 * 1024);
      }
    }
  };
  walk(hub);
}

describe("a blob bomb on the remote (the daemon went to 1.65 GB and wrote 512 MB into the hub)", () => {
  for (const transport of ["git", "http"] as const) {
    test(`over ${transport}: 2 MB of compressed zeros that inflate to 512 MiB are skipped from their header; memory stays low`, async () => {
      const remote = bareRepo();
      const server = transport === "http" ? startGitServer(remote.root) : undefined;
      const url = server ? server.url("remote.git") : remote.path;
      const { paths } = await joinedProject(url);
      await Bun.write(paths.config, CONFIG(url));
      await trustConfig(paths);
      const daemon = await startDaemonProcess([BUN, CLI], paths);
      try {
        const item = (await api(daemon.url, daemon.token, "/api/items", { title: "before the bomb" })).body;
        expect((await api(daemon.url, daemon.token, "/api/sync", {})).status).toBe(200);
        const bomb = hostileEntry(remote.path, "bomb", { bombBytes: 512 * 1024 * 1024 });
        pushTree(remote.path, [
          { path: `items/${item.id.slice(0, 2)}/${item.id}.json`, entry: bomb, label: "bomb" },
          { path: "heartbeats/bomb.json", entry: bomb, label: "bomb" },
        ]);
        const round = await api(daemon.url, daemon.token, "/api/sync", {});
        expect(round.status).toBe(200);
        const status = (await api(daemon.url, daemon.token, "/api/sync")).body;
        expect(status.head).toBe(git(remote.path, ["rev-parse", "refs/heads/drover/hub"]));
        expect(status.invalid_files.map((f: { path: string }) => f.path)).toEqual(
          expect.arrayContaining(["heartbeats/bomb.json", `items/${item.id.slice(0, 2)}/${item.id}.json`]),
        );
        expect(status.invalid_files[0].reason).toMatch(/larger than hub.max_file_bytes \(536870912 bytes\)/);
        _onlyLayoutFiles(paths.hub, "bomb");
        const peak = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))![1]) * 1024;
        expect(peak).toBeLessThan(400 * 1024 * 1024);
        // and it goes on: a new item is made and pushed
        expect(
          (
            await api(daemon.url, daemon.token, "/api/ops/item.claim", {
              id: (await api(daemon.url, daemon.token, "/api/items", { title: "after" })).body.id,
              agent: "a",
            })
          ).body,
        ).toMatchObject({ confirmed: true });
      } finally {
        await daemon.stop();
        await server?.stop();
        rmSync(paths.root, { recursive: true, force: true });
        rmSync(remote.root, { recursive: true, force: true });
      }
    }, 120_000);
  }
});

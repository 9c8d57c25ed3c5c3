/**
 * SPEC §3 promises P1–P3, P5, P6 (P4 is sync-crash.test.ts), each for both transports: isomorphic-git over
 * a real `git http-backend` on 127.0.0.1, and the system `git` against a plain path.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualClock } from "../core/clock.ts";
import { bareRepo, type GitServer, startGitServer } from "./git-server.ts";
import { itemHistory, type Machine, machine, remoteGit, remoteHistory } from "./sync-machines.ts";

const TRANSPORTS = ["isomorphic-git (http)", "git (path)"] as const;

for (const transport of TRANSPORTS) {
  describe(`sync over ${transport}`, () => {
    let remote: { root: string; path: string };
    let server: GitServer | null = null;
    let url: string;
    const machines: Machine[] = [];
    const joinMachine = async () => {
      const m = await machine(url);
      machines.push(m);
      return m;
    };
    /** Makes the remote unreachable, then reachable again. */
    const outage = {
      async begin() {
        if (server) await server.stop();
        else renameSync(remote.path, remote.path + ".away");
      },
      end() {
        if (server) server.start();
        else renameSync(remote.path + ".away", remote.path);
      },
    };

    beforeAll(() => {
      remote = bareRepo();
      if (transport.startsWith("isomorphic")) {
        server = startGitServer(remote.root);
        url = server.url("remote.git");
      } else url = remote.path;
    });
    afterAll(async () => {
      for (const m of machines) await m.cleanup();
      await server?.stop();
      rmSync(remote.root, { recursive: true, force: true });
    });

    test("init creates the hub branch on the remote, and a second machine joins it", async () => {
      const a = await joinMachine();
      expect(remoteGit(remote.path, "rev-parse", "drover/hub")).toBe((await a.head())!);
      const item = await a.op("item.create", { title: "made on a" });
      await a.op("sync.now");
      const b = await joinMachine();
      expect(await b.head()).toBe(await a.head());
      expect((await b.op("item.get", { id: item.id })).title).toBe("made on a");
      const later = await a.op("item.create", { title: "made on a, later" });
      await a.op("sync.now");
      expect(await b.op("sync.now")).toMatchObject({ fetched: 1, pushed: false });
      expect(b.events.find((e) => e.type === "item_created" && (e as any).item.id === later.id)?.origin).toBe("remote");
    });

    test("P1 nothing lost: concurrent creates on two machines all reach the remote, every op confirmed", async () => {
      const [a, b] = machines as [Machine, Machine];
      const made = await Promise.all([
        ...Array.from({ length: 5 }, (_, i) => a.op("item.create", { title: `a${i}` })),
        ...Array.from({ length: 5 }, (_, i) => b.op("item.create", { title: `b${i}` })),
      ]);
      await Promise.all([a.op("sync.now"), b.op("sync.now")]);
      await a.op("sync.now");
      const onRemote = remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub");
      for (const it of made) expect(onRemote).toContain(`${it.id}.json`);
      for (const m of [a, b]) expect((await m.op("sync.status")).pending_ops).toBe(0);
      const states = a.rt.ctx.db.query<{ status: string }, []>("SELECT DISTINCT status FROM outbox").all();
      expect(states.map((s) => s.status)).toEqual(["confirmed"]);
    });

    test("P2 one holder: a claim made on a stale view is rejected with an event; fences run 1, 2", async () => {
      const [a, b] = machines as [Machine, Machine];
      const it = await a.op("item.create", { title: "contested" });
      await a.op("sync.now");
      await b.op("sync.now"); // b knows the item, unclaimed
      expect(await a.op("item.claim", { id: it.id, agent: "agent-a" })).toMatchObject({ fence: 1, confirmed: true });
      // b has not synced since: its local view says unclaimed, so the claim is accepted locally, then refused
      const err = await b.op("item.claim", { id: it.id, agent: "agent-b" }).catch((e) => e);
      expect(err.code).toBe("claimed");
      expect(err.message).toBe(`Cannot claim item "${it.id}": held by "agent-a"`);
      const rejected = b.events.find((e) => e.type === "op_rejected") as any;
      expect(rejected).toMatchObject({ op: "item.claim", item_id: it.id, code: "claimed" });
      expect((await b.op("item.get", { id: it.id })).claim.agent_id).toBe("agent-a"); // b's view was corrected

      await a.op("item.release", { id: it.id, agent: "agent-a", fence: 1 });
      await a.op("sync.now");
      await b.op("sync.now");
      expect(await b.op("item.claim", { id: it.id, agent: "agent-b" })).toMatchObject({ fence: 2, confirmed: true });
      const fences = itemHistory(remoteHistory(remote.path))
        .get(it.id)!
        .filter((v) => v.item.claim)
        .map((v) => v.item.claim.fence);
      expect([...new Set(fences)]).toEqual([1, 2]);
    });

    test("a grant made on a stale view answers with the fence the remote gave it; item.next on a stale view is refused with the reason", async () => {
      const [a, b] = machines as [Machine, Machine];
      const first = await a.op("item.create", { title: "claimed and released elsewhere" });
      await a.op("sync.now");
      await b.op("sync.now");
      expect(await a.op("item.claim", { id: first.id, agent: "agent-a" })).toMatchObject({ fence: 1, confirmed: true });
      await a.op("item.release", { id: first.id, agent: "agent-a", fence: 1 });
      await a.op("sync.now");
      // b never saw the claim: locally its grant is fence 1; replayed on the remote after a's release it is fence 2
      expect(await b.op("item.claim", { id: first.id, agent: "agent-b" })).toMatchObject({
        fence: 2,
        confirmed: true,
        claim: { agent_id: "agent-b", fence: 2 },
      });

      // item.next: b takes locally an item a has meanwhile taken on the remote; the replay refuses it
      const second = await a.op("item.create", { title: "taken elsewhere", priority: 0 });
      await a.op("sync.now");
      await b.op("sync.now");
      await a.op("item.claim", { id: second.id, agent: "agent-a" });
      const err = await b.op("item.next", { agent: "agent-b2" }).catch((e) => e);
      expect(err).toMatchObject({ code: "claimed", message: `Cannot claim item "${second.id}": held by "agent-a"` });
      // and an item that left the backlog there: refused as no longer ready
      const third = await a.op("item.create", { title: "moved elsewhere", priority: 0 });
      await a.op("sync.now");
      await b.op("sync.now");
      await a.op("item.move", { id: third.id, to: "blocked" });
      await a.op("sync.now");
      const late = await b.op("item.next", { agent: "agent-b3" }).catch((e) => e);
      expect(late).toMatchObject({
        code: "claimed",
        message: `Cannot claim item "${third.id}": it is no longer ready (blocked)`,
      });
      expect((await b.op("item.get", { id: third.id })).stage).toBe("blocked");
    });

    test("a lapsed claim is cleared by its holder's machine only; elsewhere it is left, and takeable", async () => {
      const clock = manualClock(Date.now());
      const [a, b] = [await machine(url, { clock }), await machine(url, { clock })];
      machines.push(a, b);
      const it = await a.op("item.create", { title: "lapsing" });
      await a.op("item.claim", { id: it.id, agent: "agent-a", ttl_secs: 60 });
      await b.op("sync.now");
      clock.advance(61_000);
      await b.rt.tick();
      expect((await b.op("item.get", { id: it.id })).claim?.agent_id).toBe("agent-a");
      expect((await b.op("sync.status")).pending_ops).toBe(0);
      await a.rt.tick();
      expect((await a.op("item.get", { id: it.id })).claim).toBeNull();
      await a.op("sync.now");
      await b.op("sync.now");
      expect((await b.op("item.get", { id: it.id })).claim).toBeNull();
    });

    test("P3 convergence: after quiet rounds every hub equals the remote, files and indexes alike", async () => {
      const [a, b] = machines as [Machine, Machine];
      const c = await joinMachine();
      await Promise.all([
        a.op("item.create", { title: "x" }),
        b.op("item.create", { title: "y" }),
        c.op("item.create", { title: "z" }),
      ]);
      for (let i = 0; i < 2; i++) for (const m of [a, b, c]) await m.op("sync.now");
      const head = remoteGit(remote.path, "rev-parse", "drover/hub");
      for (const m of [a, b, c]) expect(await m.head()).toBe(head);
      const lists = await Promise.all([a, b, c].map((m) => m.op("items.list")));
      expect(lists[1]).toEqual(lists[0]);
      expect(lists[2]).toEqual(lists[0]);
      expect(lists[0].length).toBe(
        remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")
          .split("\n")
          .filter((p) => p.startsWith("items/")).length,
      );
    });

    test("P5 offline: ops work locally, claims answer confirmed: false at once, everything goes out on return", async () => {
      const [a, b] = machines as [Machine, Machine];
      await outage.begin();
      try {
        const it = await a.op("item.create", { title: "made offline" });
        const started = performance.now();
        expect(await a.op("item.claim", { id: it.id, agent: "agent-a" })).toMatchObject({ fence: 1, confirmed: false });
        expect(performance.now() - started).toBeLessThan(5000);
        const err = await a.op("sync.now").catch((e) => e);
        expect(err.code).toBe("offline");
        const status = await a.op("sync.status");
        expect(status.pending_ops).toBe(2);
        expect(status.last_error).toContain("Cannot reach the hub remote");
        outage.end();
        expect(await a.op("sync.now")).toMatchObject({ pushed: true, confirmed: 2, rejected: 0 });
        await b.op("sync.now");
        expect((await b.op("item.get", { id: it.id })).claim).toMatchObject({ agent_id: "agent-a", fence: 1 });
      } finally {
        if (server) server.start();
      }
    });

    test("P6 coalescing: a burst of ops and heartbeats leaves one commit on the remote's shared branch", async () => {
      const [a] = machines as [Machine];
      await a.op("sync.now");
      const before = Number(remoteGit(remote.path, "rev-list", "--count", "drover/hub"));
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => a.op("item.create", { title: `burst ${i}` })),
        ...Array.from({ length: 5 }, (_, i) => a.op("heartbeat", { agent: `beater-${i}` })),
      ]);
      await a.op("sync.now");
      expect(Number(remoteGit(remote.path, "rev-list", "--count", "drover/hub"))).toBe(before + 1);
      const message = remoteGit(remote.path, "log", "-1", "--format=%B", "drover/hub");
      expect(message.split("\n").filter((l) => l.includes('"item.create"')).length).toBe(20);
      // heartbeats travel on the machine's own presence ref, never on the shared branch
      expect(remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")).not.toContain("heartbeats/");
      const presence = `drover/presence/${a.rt.ctx.hub.presence.machine}`;
      expect(remoteGit(remote.path, "ls-tree", "-r", "--name-only", presence)).toContain("heartbeats/beater-4.json");
    });

    test("usage reported on two machines adds up on both; heartbeats arrive as files", async () => {
      const [a, b] = machines as [Machine, Machine];
      const it = await a.op("item.create", { title: "costly" });
      await a.op("sync.now");
      await b.op("sync.now");
      await a.op("usage.report", {
        agent: "agent-a",
        item: it.id,
        input_tokens: 100,
        output_tokens: 10,
        cost_usd: 0.5,
      });
      await b.op("usage.report", { agent: "agent-b", item: it.id, input_tokens: 20, output_tokens: 2, cost_usd: 0.25 });
      await a.op("sync.now");
      await b.op("sync.now");
      await a.op("sync.now");
      const want = { input_tokens: 120, output_tokens: 12, cache_read_tokens: 0, cost_usd: 0.75, reports: 2 };
      expect((await a.op("item.get", { id: it.id })).usage).toEqual(want);
      expect((await b.op("item.get", { id: it.id })).usage).toEqual(want);
      // a's heartbeats (P6 above) reached b's working files
      expect((await b.op("agents.list")).map((x: { agent_id: string }) => x.agent_id)).toContain("beater-4");
    });

    test("a garbage hub file and an unsafe name on the remote are skipped and reported; sync goes on", async () => {
      const [a] = machines as [Machine];
      const work = mkdtempSync(join(tmpdir(), "drover-vandal-"));
      try {
        execFileSync("git", ["clone", "-q", "--branch", "drover/hub", remote.path, work]);
        await Bun.write(join(work, "items/zz/zzzzz.json"), "{ not json");
        await Bun.write(join(work, "items/zz/.sneaky.json"), "{}");
        execFileSync("git", ["add", "-A"], { cwd: work });
        execFileSync("git", ["-c", "user.name=v", "-c", "user.email=v@x", "commit", "-qm", "vandal"], { cwd: work });
        execFileSync("git", ["push", "-q", "origin", "drover/hub"], { cwd: work });
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      await a.op("sync.now");
      const invalid = (await a.op("sync.status")).invalid_files.map((f: { path: string }) => f.path);
      expect(invalid).toEqual(["items/zz/.sneaky.json", "items/zz/zzzzz.json"]);
      expect(await Bun.file(join(a.paths.hub, "items/zz/.sneaky.json")).exists()).toBe(false);
      const report = await a.rt.reconcile();
      expect(JSON.stringify(report)).toContain('"invalid_files":2');
      const it = await a.op("item.create", { title: "after the vandal" });
      expect(await a.op("sync.now")).toMatchObject({ pushed: true, rejected: 0 });
      expect(remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")).toContain(`${it.id}.json`);
    });
  });
}

describe("a remote that takes the connection and never answers", () => {
  test("the round gives up after hub.network_timeout_secs; local ops go on meanwhile (the fetch holds no lock)", async () => {
    const bare = bareRepo();
    const hang = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => undefined) });
    const m = await machine(bare.path, {
      config: `[hub]\nremote = "http://127.0.0.1:${hang.port}/r.git"\nnetwork_timeout_secs = 1\n`,
      trusted: true,
    });
    try {
      const started = performance.now();
      const round = m.op("sync.now").catch((e) => e);
      await m.op("item.create", { title: "made while the remote hangs" });
      expect(performance.now() - started).toBeLessThan(700);
      expect(await round).toMatchObject({ code: "offline" });
      expect(performance.now() - started).toBeGreaterThan(900);
      expect(performance.now() - started).toBeLessThan(5000);
      expect((await m.op("sync.status")).pending_ops).toBe(1);
    } finally {
      await m.cleanup();
      await hang.stop(true);
      rmSync(bare.root, { recursive: true, force: true });
    }
  });
});

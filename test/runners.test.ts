/**
 * Runners (SPEC §13) with a scripted agent (`command` preset, test/fixtures/runner-agent.ts): each daemon is a
 * real process, each run a real process group; time-dependent endings (quiet, timeout, the stop's grace, a rate
 * limit's reset) are driven by the daemon's injected clock (`DROVER_CLOCK_FILE`), not by waiting.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { agentIdSchema } from "../core/ids.ts";
import { processAlive } from "../core/process.ts";
import { runnerSchema } from "../features/runners/contract.ts";
import { runCommand } from "../features/runners/presets.ts";
import { MAX_LOG_BYTES } from "../features/runners/process.ts";
import { renderPrompt } from "../features/runners/prompt.ts";
import { endRun, forgetEndedRuns, insertRun, listRuns, oldLogs, runMigrations } from "../features/runners/store.ts";
import { slotAgent } from "../features/runners/supervisor.ts";
import { type RunnerOptions, runnerProject, runsOf } from "./fixtures/runner-project.ts";
import {
  api,
  BUN,
  CLI,
  createItem,
  type DaemonProc,
  getItem,
  hostileRuns,
  run,
  startDaemonProcess,
  until,
} from "./helpers.ts";

const cleanups: Array<() => unknown> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("slots", () => {
  test("a slot's agent id stays a valid, distinct id however long the runner's name and the machine's id are", () => {
    const machine = `${"h".repeat(40)}-abcd`;
    const ids = [1, 2, 3].map((n) => slotAgent("a-very-long-runner-name-of-32-ch", machine, n));
    const other = slotAgent("a-very-long-runner-name-of-32-ch", `${"h".repeat(40)}-wxyz`, 1);
    expect(new Set([...ids, other]).size).toBe(4);
    for (const id of [...ids, other]) expect(agentIdSchema.safeParse(id).success).toBe(true);
    expect(slotAgent("claude", "vm-3ils", 2)).toBe("claude-vm-3ils-2");
  });
});

describe("a runner's endings", () => {
  const setup = _daemon({ max: 4 });

  test("succeed: running within 1 s of its creation; exit 0 moves it to on_success with its usage; the slot is free", async () => {
    const { d } = await setup;
    const id = await createItem(d, "succeed once");
    const [ended] = await runsOf(d, id, (runs) => runs.some((r) => r.state === "ended"));
    const item = await getItem(d, id);
    expect(Date.parse(ended!.started_at) - Date.parse(item.created_at)).toBeLessThan(1000);
    expect(ended).toMatchObject({ reason: "success", exit_code: 0, runner: "scripted" });
    expect(ended!.agent_id).toMatch(/^scripted-.+-[1-4]$/);
    expect(item).toMatchObject({ stage: "qa", claim: null });
    expect(item.usage).toMatchObject({
      input_tokens: 1200,
      output_tokens: 340,
      cache_read_tokens: 5000,
      cost_usd: 0.0125,
    });
    expect(item.notes ?? []).toEqual([]);
  });

  test("fail: released with a note giving the reason and the log's tail, retried, blocked after max_attempts", async () => {
    const { d } = await setup;
    const id = await createItem(d, "fail always");
    await until(async () => (await getItem(d, id)).stage === "blocked");
    const runs = await runsOf(d, id, (r) => r.length === 3 && r.every((x) => x.state === "ended"));
    expect(runs.map((r) => [r.reason, r.exit_code])).toEqual([
      ["failed", 1],
      ["failed", 1],
      ["failed", 1],
    ]);
    const item = await getItem(d, id);
    expect(item.notes).toHaveLength(3);
    expect(item.notes[0].text).toContain("failed (exit 1)");
    expect(item.notes[0].text).toContain("the tests failed (3 of 12)");
    expect(item.claim).toBeNull();
  });

  test("crash: a failure whose note names the signal", async () => {
    const { d } = await setup;
    const id = await createItem(d, "crash now");
    const [first] = (await runsOf(d, id, (r) => r.some((x) => x.state === "ended"))).slice(-1);
    expect(first).toMatchObject({ reason: "crashed", exit_code: null });
    await until(async () => (await getItem(d, id)).notes?.length >= 1);
    expect((await getItem(d, id)).notes[0].text).toContain("crashed (signal SIGKILL)");
    await until(async () => (await getItem(d, id)).stage === "blocked");
  });

  test("retry: the next run's prompt carries the failed run's note, and it succeeds", async () => {
    const { d } = await setup;
    const id = await createItem(d, "retry please");
    await until(async () => (await getItem(d, id)).stage === "qa");
    const runs = await runsOf(d, id, (r) => r.length === 2);
    expect(runs.map((r) => r.reason)).toEqual(["success", "failed"]); // newest first
  });

  test("move: an agent that moves its item itself ends as moved, and drover moves nothing more", async () => {
    const { d } = await setup;
    const id = await createItem(d, "move myself");
    const [ended] = await runsOf(d, id, (r) => r.some((x) => x.state === "ended"));
    expect(ended).toMatchObject({ reason: "moved", exit_code: 0 });
    expect(await getItem(d, id)).toMatchObject({ stage: "qa", claim: null });
  });
});

describe("a run's log is a file in .drover/", () => {
  const setup = _daemon({ max: 1 });

  test("replaced by a FIFO or a link to /dev/zero: run.get and run log answer at once, and read nothing of it", async () => {
    const { d, dir } = await setup;
    const id = await createItem(d, "succeed once");
    const [ended] = await runsOf(d, id, (r) => r[0]?.state === "ended");
    for (const plant of [() => execFileSync("mkfifo", [ended.log]), () => symlinkSync("/dev/zero", ended.log)]) {
      rmSync(ended.log, { force: true });
      plant();
      const started = performance.now();
      const got = await api(d.url, d.token, `/api/runs/${ended.run}`);
      expect(got.status).toBe(200);
      expect(got.body.tail).toBe("");
      const log = await run([BUN, CLI, "run", "log", ended.run], dir);
      expect(log.stdout).toBe("");
      expect(log.stderr.trim().split("\n")).toHaveLength(1);
      expect(performance.now() - started).toBeLessThan(5000);
      await api(d.url, d.token, "/health"); // the daemon still answers
    }
  });

  test("swapped for a FIFO while the run floods it past its bound: cut back where it is open, the daemon answers", async () => {
    const { d, dir } = await setup;
    const id = await createItem(d, "flood now");
    const [running] = await runsOf(d, id, (r) => r[0]?.pid);
    await until(() => statSync(running.log).size >= 3 * 1024 * 1024); // then it waits for the go
    rmSync(running.log);
    execFileSync("mkfifo", [running.log]);
    writeFileSync(join(dir, `go-${id}`), ""); // 3 MiB more: past MAX_LOG_BYTES, cut back while the FIFO is there
    expect(6 * 1024 * 1024).toBeGreaterThan(MAX_LOG_BYTES);
    await until(async () => {
      const health = await fetch(`${d.url}/health`, { signal: AbortSignal.timeout(2000) });
      expect(health.status).toBe(200);
      return (await api(d.url, d.token, `/api/runs?item=${id}`)).body[0].state === "ended";
    }, 20_000);
    const [ended] = await runsOf(d, id, () => true);
    expect(ended).toMatchObject({ reason: "success", exit_code: 0 });
    expect(statSync(ended.log).isFIFO()).toBe(true); // nothing of the run was written through the path
    expect((await getItem(d, id)).usage).toMatchObject({ input_tokens: 1200 }); // its output was read to the end
  }, 30_000);
});

describe("a runner's clock", () => {
  const setup = _daemon({ max: 1 });

  test("quiet for quiet_mins (no output, no heartbeat): stopped as stuck, released with a note, then retried", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "hang-once now");
    const [running] = await runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await Bun.sleep(300);
    expect((await runsOf(d, id, () => true))[0].state).toBe("running");
    await jump(11 * 60_000);
    const runs = await runsOf(d, id, (r) => r.some((x) => x.reason === "stuck"));
    expect(runs.find((r) => r.run === running!.run)).toMatchObject({ reason: "stuck" });
    expect(processAlive(running!.pid, running!.pid_start)).toBe(false);
    await until(async () => (await getItem(d, id)).stage === "qa"); // the second run succeeds
    expect((await getItem(d, id)).notes[0].text).toContain("was quiet too long");
  });

  test("quiet while the supervisor keeps beating for it (every 30 s): still stopped as stuck", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "hang-once again");
    const [running] = await runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    for (let i = 0; i < 4; i++) await jump(3.5 * 60_000); // each step a supervisor beat, none of them the run's
    const runs = await runsOf(d, id, (r) => r.some((x) => x.reason === "stuck"));
    expect(runs.find((r) => r.run === running!.run)).toMatchObject({ reason: "stuck" });
    await until(async () => (await getItem(d, id)).stage === "qa");
  });

  test("past timeout_mins, however busy: stopped as timeout", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "chatty-once now");
    await runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await jump(31 * 60_000);
    await runsOf(d, id, (r) => r.some((x) => x.reason === "timeout"));
    await until(async () => (await getItem(d, id)).stage === "qa");
  });

  test("run.stop: SIGTERM to the group, SIGKILL once the grace has passed; released with a note, not counted", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "stubborn-once now");
    const [running] = await runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await _said(d, running!.run, "working"); // its SIGTERM handler is set before its first line
    const stopped = await api(d.url, d.token, `/api/runs/${running!.run}/stop`, {});
    expect(stopped.status).toBe(200);
    await _said(d, running!.run, "ignoring SIGTERM"); // the SIGTERM reached it
    expect(processAlive(running!.pid, running!.pid_start)).toBe(true);
    await jump(11_000);
    await runsOf(d, id, (r) => r.some((x) => x.reason === "stopped"));
    expect(processAlive(running!.pid, running!.pid_start)).toBe(false);
    await until(async () => (await getItem(d, id)).stage === "qa");
    expect((await getItem(d, id)).notes[0].text).toContain("was stopped");
    expect((await api(d.url, d.token, `/api/runs/${running!.run}/stop`, {})).status).toBe(409);
  });
});

describe("a runner under load and after a crash", () => {
  test("a rate limit pauses the runner until the provider's reset and releases the item untouched", async () => {
    const reset = Math.floor(Date.now() / 1000) + 7200;
    const { d, jump } = await _daemon({ max: 2, env: { DROVER_TEST_RESET: String(reset) } });
    const limited = await createItem(d, "limit-once a");
    const [ended] = await runsOf(d, limited, (r) => r.some((x) => x.state === "ended"));
    expect(ended).toMatchObject({ reason: "rate_limited", exit_code: 1 });
    await until(async () => (await getItem(d, limited)).claim === null);
    expect((await getItem(d, limited)).notes ?? []).toEqual([]);
    const agents = (await api(d.url, d.token, "/api/agents")).body;
    expect(agents.find((a: any) => a.agent_id === ended!.agent_id)?.paused_until).toBe(
      new Date(reset * 1000).toISOString(),
    );
    const waiting = await createItem(d, "succeed b");
    // the whole runner waits: a fill now starts nothing
    expect((await api(d.url, d.token, "/api/reconcile", {})).body.runners).toEqual({ changed: 0 });
    expect((await api(d.url, d.token, `/api/runs?item=${waiting}`)).body).toEqual([]);
    await jump(7200_000 + 60_000);
    await until(async () => (await getItem(d, waiting)).stage === "qa");
    await until(async () => (await getItem(d, limited)).stage === "qa");
  });

  test("20 runs at once: each item runs once, ends with its usage, and the supervisor keeps up", async () => {
    const { d, dir } = await _daemon({ max: 20 });
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => createItem(d, `gate ${i}`)));
    // every run waits at the gate: all 20 must be running at once before any may end
    await until(async () => (await api(d.url, d.token, "/api/runs?state=running")).body.length === 20, 20_000);
    writeFileSync(join(dir, "gate"), "");
    await until(async () => {
      const runs = (await api(d.url, d.token, "/api/runs?limit=100")).body as any[];
      return runs.length === 20 && runs.every((r) => r.state === "ended");
    }, 20_000);
    for (const id of ids) {
      const item = await getItem(d, id);
      expect(item).toMatchObject({ stage: "qa", claim: null, usage: { input_tokens: 1200, reports: 1 } });
      expect((await api(d.url, d.token, `/api/runs?item=${id}`)).body).toHaveLength(1);
    }
  }, 60_000);

  test("an item ready before the daemon starts: its run, started while the daemon starts, reaches the daemon", async () => {
    const keys = { timeout_mins: 30, quiet_mins: 10, max_attempts: 1 };
    const project = await runnerProject({ max: 1, keys });
    cleanups.push(project.cleanup);
    // made by a command with no daemon running: the first fill, inside the daemon's start, takes it
    const made = await run([BUN, CLI, "item", "create", "--title", "move early", "--json"], project.dir);
    const id = JSON.parse(made.stdout).id;
    const d = await startDaemonProcess([BUN, CLI], project.paths); // --port 0: no address but the one it listens on
    cleanups.push(() => d.stop());
    const [ended] = await runsOf(d, id, (r) => r.some((x) => x.state === "ended"));
    expect(ended).toMatchObject({ reason: "moved", exit_code: 0 });
  });

  test("kill -9 of the daemon mid-run: the next start stops the orphan and releases its item; no process works on an unrenewed claim", async () => {
    const { d, project, clockFile } = await _daemon({ max: 1 });
    const id = await createItem(d, "hang forever");
    const [orphan] = await runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    expect(processAlive(orphan!.pid, orphan!.pid_start)).toBe(true); // its own process group outlived the daemon
    const again = await startDaemonProcess([BUN, CLI], project.paths, { DROVER_CLOCK_FILE: clockFile });
    cleanups.push(() => again.stop());
    const runs = await runsOf(again, id, (r) => r.some((x) => x.reason === "orphaned") && r[0].state === "running");
    expect(processAlive(orphan!.pid, orphan!.pid_start)).toBe(false);
    expect((await getItem(again, id)).notes[0].text).toContain("left running by a daemon that died");
    // the item runs again, under a claim the live supervisor renews
    const [current] = runs;
    expect((await getItem(again, id)).claim).toMatchObject({ agent_id: current.agent_id });
    await again.stop(); // a daemon stopping stops its runs
    expect(processAlive(current.pid, current.pid_start)).toBe(false);
    const after = await startDaemonProcess([BUN, CLI], project.paths, { DROVER_CLOCK_FILE: clockFile });
    cleanups.push(() => after.stop());
    const ended = (await api(after.url, after.token, `/api/runs?item=${id}`)).body.find(
      (r: any) => r.run === current.run,
    );
    expect(ended).toMatchObject({ state: "ended", reason: "stopped" });
  }, 60_000);

  test("two orphans that ignore SIGTERM: the next start answers at once; both are stopped within one grace", async () => {
    const { d, project, clockFile } = await _daemon({ max: 2 });
    const ids = [await createItem(d, "deaf-once a"), await createItem(d, "deaf-once b")];
    const orphans = await Promise.all(ids.map(async (id) => (await runsOf(d, id, (r) => r[0]?.pid))[0]));
    for (const o of orphans) await _said(d, o.run, "deaf to SIGTERM"); // its handler is set
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    const restarted = performance.now();
    const again = await startDaemonProcess([BUN, CLI], project.paths, { DROVER_CLOCK_FILE: clockFile });
    cleanups.push(() => again.stop());
    expect(performance.now() - restarted).toBeLessThan(5000); // daemon.json names its URL: it does not wait for them
    expect((await fetch(`${again.url}/health`)).status).toBe(200);
    await until(() => orphans.every((o) => !processAlive(o.pid, o.pid_start)), 15_000);
    expect(performance.now() - restarted).toBeLessThan(13_000); // one grace (10 s) for both, not one each
    for (const id of ids) await runsOf(again, id, (r) => r.some((x) => x.reason === "orphaned"));
    for (const id of ids) await until(async () => (await getItem(again, id)).stage === "qa"); // then run again
  }, 60_000);

  test("a run never sees this machine's hub or gateway credentials", async () => {
    const { d } = await _daemon({
      max: 1,
      daemonEnv: { DROVER_GIT_TOKEN: "hub-secret", DROVER_GATEWAY_TOKEN: "gw-secret" },
    });
    const id = await createItem(d, "env please");
    const [ended] = await runsOf(d, id, (r) => r[0]?.state === "ended");
    const { tail } = (await api(d.url, d.token, `/api/runs/${ended.run}`)).body;
    expect(tail).toContain(`env: git token absent, gateway token absent, agent ${ended.agent_id}`);
  });

  test("no worktree, no run: never in the user's checkout; the note says why, and the item ends blocked", async () => {
    const { d } = await _daemon({ max: 1, commit: false }); // a repository without a commit has no base to branch from
    const id = await createItem(d, "succeed here");
    await until(async () => (await getItem(d, id)).stage === "blocked");
    const runs = (await api(d.url, d.token, `/api/runs?item=${id}`)).body;
    expect(runs.map((r: any) => [r.reason, r.pid])).toEqual([
      ["not_started", null],
      ["not_started", null],
      ["not_started", null],
    ]);
    expect((await getItem(d, id)).notes[0].text).toMatch(/could not be started\. The end of its output:\n.*worktree/is);
  });

  test("an item in a later stage with no worktree left: not started, never in the user's checkout", async () => {
    const { d } = await _daemon({ max: 1, keys: { stages: ["qa"], on_success: "done" } });
    const created = await api(d.url, d.token, "/api/items", { title: "succeed here", stage: "qa" });
    const id = created.body.id as string;
    await until(async () => (await getItem(d, id)).stage === "blocked");
    const runs = await runsOf(d, id, (r) => r.length === 3);
    expect(runs.map((r: any) => [r.reason, r.pid, r.cwd])).toEqual(Array(3).fill(["not_started", null, ""]));
    expect((await getItem(d, id)).notes[0].text).toContain(`Cannot run item "${id}" in qa: it has no worktree here`);
  });

  test("worktrees off: no run, never in the user's checkout", async () => {
    const { d } = await _daemon({ max: 1, more: "[pipeline]\nworktrees = false\n" });
    const id = await createItem(d, "succeed here");
    await until(async () => (await getItem(d, id)).stage === "blocked");
    const runs = await runsOf(d, id, (r) => r.length === 3);
    expect(runs.map((r: any) => [r.reason, r.pid, r.cwd])).toEqual(Array(3).fill(["not_started", null, ""]));
    expect((await getItem(d, id)).notes[0].text).toContain("worktrees are off");
  });

  test("a runner in a committed config nobody trusted does not run; drover trust makes it run", async () => {
    const { d, project } = await _daemon({ max: 1, trusted: false });
    const id = await createItem(d, "succeed later");
    expect((await api(d.url, d.token, "/api/reconcile", {})).body.runners).toEqual({ changed: 0 });
    expect((await api(d.url, d.token, `/api/runs?item=${id}`)).body).toEqual([]);
    expect((await getItem(d, id)).stage).toBe("backlog");
    const trusted = await run([BUN, CLI, "trust", "--yes"], project.dir);
    expect(trusted.code, trusted.stderr).toBe(0);
    await until(async () => (await getItem(d, id)).stage === "qa");
  });
});

describe("the runs table", () => {
  const db = new Database(":memory:");
  for (const m of runMigrations) db.exec(m);

  test("runs.list and the logs to prune read newest first from an index, not by sorting the table", () => {
    const sqls: string[] = [];
    const query = (sql: string) => {
      sqls.push(sql);
      return db.query(sql);
    };
    const spy = { query } as unknown as Database;
    listRuns(spy, { limit: 50 });
    listRuns(spy, { state: "ended", limit: 50 });
    listRuns(spy, { state: "running", item: "k7q2m", limit: 50 });
    oldLogs(spy, 200);
    for (const sql of sqls) {
      const plan = db
        .query<{ detail: string }, null[]>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...Array(sql.split("?").length - 1).fill(null))
        .map((p) => p.detail);
      expect({ sql, sorted: plan.some((p) => p.includes("TEMP B-TREE")) }).toEqual({ sql, sorted: false });
    }
  });

  test("ended runs past the newest 10,000 are forgotten; running ones never", () => {
    const row = (n: number) => ({
      run: `run-${String(n).padStart(8, "a")}`,
      runner: "r",
      agent_id: "r-m-1",
      item_id: "abc12",
      stage: "coding",
      fence: 1,
      cwd: "",
      log: "",
      pid: null,
      pid_start: null,
      started_at: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(),
    });
    db.transaction(() => {
      for (let n = 0; n < 10_005; n++) {
        insertRun(db, row(n));
        if (n >= 3) endRun(db, row(n).run, { at: row(n).started_at, exitCode: 0, reason: "success", usage: null });
      }
    })();
    forgetEndedRuns(db, 10_000);
    const count = (state: string) =>
      db.query<{ n: number }, [string]>("SELECT count(*) AS n FROM runs WHERE state = ?").get(state)!.n;
    expect([count("ended"), count("running")]).toEqual([10_000, 3]);
    const oldest = db
      .query<{ run: string }, []>("SELECT run FROM runs WHERE state = 'ended' ORDER BY started_at")
      .get();
    expect(oldest!.run).toBe(row(5).run);
  });
});

describe("a run's command line", () => {
  test("generated titles, bodies and templates: a client's prompt is last, right after --, its integration before", () => {
    const text = fc.oneof(
      fc.string(),
      fc.constantFrom("--dangerously-bypass-approvals-and-sandbox", "--dangerously-skip-permissions", "-c", "--", "-"),
      fc.string().map((s) => `--${s}`),
    );
    const runner = fc.record({
      preset: fc.constantFrom("claude", "codex"),
      prompt: fc.oneof(fc.constant(""), fc.constantFrom("{title}", "{body}", "{title}\n\n{body}"), fc.string()),
      command: fc.constantFrom([], ["/opt/claude", "-p", "{prompt}", "--verbose"], ["codex", "exec", "{prompt}"]),
    });
    fc.assert(
      fc.property(runner, text, text, (r, title, body) => {
        const spec = runnerSchema.parse(r);
        const item = { id: "abc12", title, body, stage: "coding" };
        const prompt = renderPrompt(spec.prompt, { item, agent: "a-1", worktree: "/w" });
        const fields = { run: "run-aaaaaaaa", agent: "a-1", item, fence: 1, worktree: "/w", prompt };
        const { argv } = runCommand(spec, { ...fields, url: "http://127.0.0.1:1", token: "t" });
        expect(argv.at(-1)).toBe(prompt);
        expect(argv.indexOf("--")).toBe(argv.length - 2);
        const integration =
          spec.preset === "claude"
            ? argv.filter((a) => /^--(mcp-config|settings)=/.test(a))
            : argv.filter((a, i) => argv[i - 1] === "-c" && /^(mcp_servers\.drover\.|notify=)/.test(a));
        expect(integration).toHaveLength(spec.preset === "claude" ? 2 : 3);
        for (const arg of integration) expect(argv.indexOf(arg)).toBeLessThan(argv.length - 2);
      }),
      { numRuns: hostileRuns(200) },
    );
  });

  test("a command agent's arguments stay as its runner wrote them: nothing added, nothing moved", () => {
    const spec = runnerSchema.parse({ command: ["agent", "{title}", "{prompt}"] });
    const item = { id: "abc12", title: "--x", body: "", stage: "coding" };
    const fields = { run: "run-aaaaaaaa", agent: "a-1", item, fence: 1, worktree: "/w", prompt: "-p" };
    expect(runCommand(spec, { ...fields, url: "http://127.0.0.1:1", token: "t" }).argv).toEqual(["agent", "--x", "-p"]);
  });
});

// --- internal ---

type Daemon = {
  d: DaemonProc;
  dir: string;
  project: Awaited<ReturnType<typeof runnerProject>>;
  clockFile: string;
  jump(ms: number): Promise<void>;
};

let offsets = 0;

/**
 * A project whose runner `scripted` runs the scripted agent (trusted unless told), and its daemon with a clock the
 * test moves.
 */
function _daemon(options: RunnerOptions & { commit?: boolean; daemonEnv?: Record<string, string> }): Promise<Daemon> {
  return (async () => {
    const keys = { timeout_mins: 30, quiet_mins: 10, max_attempts: 3, ...options.keys };
    const project = await runnerProject({ ...options, keys });
    cleanups.push(project.cleanup);
    const clockFile = join(project.dir, `clock-${++offsets}`);
    writeFileSync(clockFile, "0");
    const d = await startDaemonProcess([BUN, CLI], project.paths, {
      DROVER_CLOCK_FILE: clockFile,
      ...options.daemonEnv,
    });
    cleanups.push(() => d.stop());
    let offset = 0;
    return {
      d,
      dir: project.dir,
      project,
      clockFile,
      async jump(ms: number) {
        offset += ms;
        writeFileSync(clockFile, String(offset));
        await Bun.sleep(1300); // re-read within 100 ms, then a tick
      },
    };
  })();
}

/** Waits until the run's log (as run.get gives its tail) holds `text`. */
async function _said(d: DaemonProc, run: string, text: string): Promise<void> {
  await until(async () => (await api(d.url, d.token, `/api/runs/${run}`)).body.tail.includes(text));
}

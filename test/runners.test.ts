/**
 * Runners (SPEC §13) with a scripted agent (`command` preset, test/fixtures/runner-agent.ts): each daemon is a
 * real process, each run a real process group; time-dependent endings (quiet, timeout, the stop's grace, a rate
 * limit's reset) are driven by the daemon's injected clock (`DROVER_CLOCK_FILE`), not by waiting.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { agentIdSchema } from "../core/ids.ts";
import { processAlive } from "../core/process.ts";
import { slotAgent } from "../features/runners/supervisor.ts";
import {
  api,
  BUN,
  CLI,
  createItem,
  type DaemonProc,
  firstCommit,
  getItem,
  ROOT,
  run,
  startDaemonProcess,
  tempProject,
  trustConfig,
  until,
} from "./helpers.ts";

const AGENT = join(ROOT, "test", "fixtures", "runner-agent.ts");
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
    const [ended] = await _runsOf(d, id, (runs) => runs.some((r) => r.state === "ended"));
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
    const runs = await _runsOf(d, id, (r) => r.length === 3 && r.every((x) => x.state === "ended"));
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
    const [first] = (await _runsOf(d, id, (r) => r.some((x) => x.state === "ended"))).slice(-1);
    expect(first).toMatchObject({ reason: "crashed", exit_code: null });
    await until(async () => (await getItem(d, id)).notes?.length >= 1);
    expect((await getItem(d, id)).notes[0].text).toContain("crashed (signal SIGKILL)");
    await until(async () => (await getItem(d, id)).stage === "blocked");
  });

  test("retry: the next run's prompt carries the failed run's note, and it succeeds", async () => {
    const { d } = await setup;
    const id = await createItem(d, "retry please");
    await until(async () => (await getItem(d, id)).stage === "qa");
    const runs = await _runsOf(d, id, (r) => r.length === 2);
    expect(runs.map((r) => r.reason)).toEqual(["success", "failed"]); // newest first
  });

  test("move: an agent that moves its item itself ends as moved, and drover moves nothing more", async () => {
    const { d } = await setup;
    const id = await createItem(d, "move myself");
    const [ended] = await _runsOf(d, id, (r) => r.some((x) => x.state === "ended"));
    expect(ended).toMatchObject({ reason: "moved", exit_code: 0 });
    expect(await getItem(d, id)).toMatchObject({ stage: "qa", claim: null });
  });
});

describe("a run's log is a file in .drover/", () => {
  const setup = _daemon({ max: 1 });

  test("replaced by a FIFO or a link to /dev/zero: run.get and run log answer at once, and read nothing of it", async () => {
    const { d, dir } = await setup;
    const id = await createItem(d, "succeed once");
    const [ended] = await _runsOf(d, id, (r) => r[0]?.state === "ended");
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
});

describe("a runner's clock", () => {
  const setup = _daemon({ max: 1 });

  test("quiet for quiet_mins (no output, no heartbeat): stopped as stuck, released with a note, then retried", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "hang-once now");
    const [running] = await _runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await Bun.sleep(300);
    expect((await _runsOf(d, id, () => true))[0].state).toBe("running");
    await jump(11 * 60_000);
    const runs = await _runsOf(d, id, (r) => r.some((x) => x.reason === "stuck"));
    expect(runs.find((r) => r.run === running!.run)).toMatchObject({ reason: "stuck" });
    expect(processAlive(running!.pid, running!.pid_start)).toBe(false);
    await until(async () => (await getItem(d, id)).stage === "qa"); // the second run succeeds
    expect((await getItem(d, id)).notes[0].text).toContain("was quiet too long");
  });

  test("quiet while the supervisor keeps beating for it (every 30 s): still stopped as stuck", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "hang-once again");
    const [running] = await _runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    for (let i = 0; i < 4; i++) await jump(3.5 * 60_000); // each step a supervisor beat, none of them the run's
    const runs = await _runsOf(d, id, (r) => r.some((x) => x.reason === "stuck"));
    expect(runs.find((r) => r.run === running!.run)).toMatchObject({ reason: "stuck" });
    await until(async () => (await getItem(d, id)).stage === "qa");
  });

  test("past timeout_mins, however busy: stopped as timeout", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "chatty-once now");
    await _runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await jump(31 * 60_000);
    await _runsOf(d, id, (r) => r.some((x) => x.reason === "timeout"));
    await until(async () => (await getItem(d, id)).stage === "qa");
  });

  test("run.stop: SIGTERM to the group, SIGKILL once the grace has passed; released with a note, not counted", async () => {
    const { d, jump } = await setup;
    const id = await createItem(d, "stubborn-once now");
    const [running] = await _runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    await Bun.sleep(300); // it has set its SIGTERM handler
    const stopped = await api(d.url, d.token, `/api/runs/${running!.run}/stop`, {});
    expect(stopped.status).toBe(200);
    await Bun.sleep(500);
    expect(processAlive(running!.pid, running!.pid_start)).toBe(true); // it ignores SIGTERM
    await jump(11_000);
    await _runsOf(d, id, (r) => r.some((x) => x.reason === "stopped"));
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
    const [ended] = await _runsOf(d, limited, (r) => r.some((x) => x.state === "ended"));
    expect(ended).toMatchObject({ reason: "rate_limited", exit_code: 1 });
    await until(async () => (await getItem(d, limited)).claim === null);
    expect((await getItem(d, limited)).notes ?? []).toEqual([]);
    const agents = (await api(d.url, d.token, "/api/agents")).body;
    expect(agents.find((a: any) => a.agent_id === ended!.agent_id)?.paused_until).toBe(
      new Date(reset * 1000).toISOString(),
    );
    const waiting = await createItem(d, "succeed b");
    await Bun.sleep(1000);
    expect((await api(d.url, d.token, `/api/runs?item=${waiting}`)).body).toEqual([]); // the whole runner waits
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

  test("kill -9 of the daemon mid-run: the next start stops the orphan and releases its item; no process works on an unrenewed claim", async () => {
    const { d, project, clockFile } = await _daemon({ max: 1 });
    const id = await createItem(d, "hang forever");
    const [orphan] = await _runsOf(d, id, (r) => r.length === 1 && r[0].pid);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    expect(processAlive(orphan!.pid, orphan!.pid_start)).toBe(true); // its own process group outlived the daemon
    const again = await startDaemonProcess([BUN, CLI], project.paths, { DROVER_CLOCK_FILE: clockFile });
    cleanups.push(() => again.stop());
    const runs = await _runsOf(again, id, (r) => r.some((x) => x.reason === "orphaned") && r[0].state === "running");
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

  test("a run never sees this machine's hub or gateway credentials", async () => {
    const { d } = await _daemon({
      max: 1,
      daemonEnv: { DROVER_GIT_TOKEN: "hub-secret", DROVER_GATEWAY_TOKEN: "gw-secret" },
    });
    const id = await createItem(d, "env please");
    const [ended] = await _runsOf(d, id, (r) => r[0]?.state === "ended");
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

  test("a runner in a committed config nobody trusted does not run; drover trust makes it run", async () => {
    const { d, project } = await _daemon({ max: 1, trusted: false });
    const id = await createItem(d, "succeed later");
    await Bun.sleep(1500);
    expect((await api(d.url, d.token, `/api/runs?item=${id}`)).body).toEqual([]);
    expect((await getItem(d, id)).stage).toBe("backlog");
    const trusted = await run([BUN, CLI, "trust", "--yes"], project.dir);
    expect(trusted.code, trusted.stderr).toBe(0);
    await until(async () => (await getItem(d, id)).stage === "qa");
  });
});

// --- internal ---

type Daemon = {
  d: DaemonProc;
  dir: string;
  project: Awaited<ReturnType<typeof tempProject>>;
  clockFile: string;
  jump(ms: number): Promise<void>;
};

let offsets = 0;

/** A trusted project whose runner `scripted` runs the scripted agent, and its daemon with a clock the test moves. */
function _daemon(options: {
  max: number;
  env?: Record<string, string>;
  trusted?: boolean;
  commit?: boolean;
  daemonEnv?: Record<string, string>;
}): Promise<Daemon> {
  return (async () => {
    const project = await tempProject();
    cleanups.push(project.cleanup);
    // runs work in worktrees, which branch from a commit
    if (options.commit !== false) firstCommit(project.dir);
    const clockFile = join(project.dir, `clock-${++offsets}`);
    writeFileSync(clockFile, "0");
    const argv = JSON.stringify([BUN, AGENT, "{title}", "{prompt}"]);
    const env = Object.entries({ DROVER_TEST_DIR: project.dir, ...options.env }).map(([k, v]) => `${k} = "${v}"`);
    await Bun.write(
      project.paths.config,
      `[hub]\nremote = ""\n\n[runners.scripted]\npreset = "command"\ncommand = ${argv}\nmax = ${options.max}\n` +
        `timeout_mins = 30\nquiet_mins = 10\nmax_attempts = 3\n[runners.scripted.env]\n${env.join("\n")}\n`,
    );
    if (options.trusted !== false) await trustConfig(project.paths);
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

/** The item's runs, newest first, once `ready` holds (10 s at most). */
async function _runsOf(d: DaemonProc, id: string, ready: (runs: any[]) => unknown): Promise<any[]> {
  let runs: any[] = [];
  await until(async () => ready((runs = (await api(d.url, d.token, `/api/runs?item=${id}`)).body)));
  return runs;
}

/**
 * `drover runs`, `drover run log <run> [--follow]` and `drover run stop <run>` (SPEC §13) against a real daemon
 * whose runner runs the scripted agent (test/fixtures/runner-agent.ts), then without the daemon.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogReader, printLog } from "../cli/runs.ts";
import { MAX_LOG_BYTES } from "../features/runners/process.ts";
import { runnerProject, runsOf } from "./fixtures/runner-project.ts";
import { api, BUN, CLI, cli, startDaemonProcess, tempProject } from "./helpers.ts";

const cleanups: Array<() => unknown> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("runs from the command line", () => {
  const setup = _project();
  let run = "";

  test("drover runs: the table of runs (runner, agent, item, state); --state and --item filter; --json is JSON", async () => {
    const { d, dir } = await setup;
    const item = (await api(d.url, d.token, "/api/items", { title: "chatty-once x" })).body.id as string;
    const [row] = await runsOf(d, item, (runs) => runs[0]?.state === "running");
    run = row.run;
    const table = await cli(["runs"], dir);
    expect(table.code, table.stderr).toBe(0);
    const [head, line] = table.stdout.split("\n");
    expect(head).toMatch(/^RUN\s+RUNNER\s+AGENT_ID\s+ITEM_ID\s+STATE\s+REASON\s+EXIT_CODE\s+STARTED_AT$/);
    expect(line!.split(/\s+/).slice(0, 5)).toEqual([run, "scripted", row.agent_id, item, "running"]);
    expect((await cli(["runs", "list"], dir)).stdout).toBe(table.stdout);
    const json = await cli(["runs", "--state", "running", "--item", item, "--json"], dir);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({ run, runner: "scripted", agent_id: row.agent_id, item_id: item, state: "running" }),
    ]);
    expect(JSON.parse((await cli(["runs", "--state", "ended", "--json"], dir)).stdout)).toEqual([]);
  });

  test("run log --follow prints the output as it is written and exits 0 by itself once run stop ended the run", async () => {
    const { d, dir } = await setup;
    const follow = Bun.spawn([BUN, CLI, "run", "log", run, "--follow"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const reader = follow.stdout.getReader();
    let out = "";
    const working = () => out.split("\n").filter((l) => /^working \d+$/.test(l)).length;
    const readUntil = async (enough: () => boolean) => {
      while (!enough()) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the follow ended early: ${out}`);
        out += new TextDecoder().decode(value);
      }
    };
    await readUntil(() => working() >= 3);
    const seen = working();
    await readUntil(() => working() >= seen + 3); // it grows while the run runs
    expect(follow.exitCode).toBeNull();
    const stopped = await cli(["run", "stop", run], dir);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^run\s+run-[a-z2-7]{8}\nstopping\s+true\n$/);
    const exited = await Promise.race([follow.exited, Bun.sleep(10_000).then(() => "still running")]);
    expect(exited).toBe(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    const row = (await api(d.url, d.token, `/api/runs/${run}`)).body;
    expect(row).toMatchObject({ state: "ended", reason: "stopped" });
    expect(out).toBe(readFileSync(row.log, "utf8")); // all of it, once, in order
    expect(await new Response(follow.stderr).text()).toBe("");
  });

  test("run log of an ended run prints its file and exits 0; --follow does the same and does not wait", async () => {
    const { d, dir } = await setup;
    const { log } = (await api(d.url, d.token, `/api/runs/${run}`)).body;
    for (const args of [
      ["run", "log", run],
      ["run", "log", run, "-f"],
      ["run", "log", "--run", run],
    ]) {
      const printed = await cli(args, dir);
      expect({ args, code: printed.code, stderr: printed.stderr }).toEqual({ args, code: 0, stderr: "" });
      expect(printed.stdout).toBe(readFileSync(log, "utf8"));
      expect(printed.stdout).toMatch(/^\{"type":"system".*\n(working \d+\n){6,}$/);
    }
  });

  test("an unknown run, a malformed id, a missing one, an unknown flag: one line each, exit 1 or 2", async () => {
    const { dir } = await setup;
    const cases: Array<[string[], number, RegExp]> = [
      [["run", "log", "run-aaaaaaaa"], 1, /^drover: Cannot find run "run-aaaaaaaa" on this machine\n$/],
      [["run", "log", "run-aaaaaaaa", "--follow"], 1, /^drover: Cannot find run "run-aaaaaaaa" on this machine\n$/],
      [["run", "stop", "run-aaaaaaaa"], 1, /^drover: Cannot find run "run-aaaaaaaa" on this machine\n$/],
      [["run", "stop", run], 1, /^drover: Cannot stop run "run-[a-z2-7]{8}": it is not running\n$/],
      [["run", "log", "../etc"], 2, /^drover: Invalid "run": /],
      [["run", "log"], 2, /^drover: Missing the run: "drover run log <run> \[--follow\]"\n$/],
      [["run", "log", run, "--folow"], 2, /^drover: Unknown option "--folow"/],
      [["runs", "--state", "done"], 2, /^drover: Invalid "state": /],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await cli(args, dir);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: "" });
      expect(r.stderr).toMatch(stderr);
    }
  });

  test("without a daemon the commands read state.db and the file; a removed log is one line, exit 1", async () => {
    const { d, dir, project } = await setup;
    const { log } = (await api(d.url, d.token, `/api/runs/${run}`)).body;
    await d.stop();
    const listed = await cli(["runs", "--state", "ended", "--json"], dir);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).map((r: { run: string }) => r.run)).toContain(run);
    expect((await cli(["run", "log", run, "--follow"], dir)).stdout).toBe(readFileSync(log, "utf8"));
    const db = new Database(project.paths.db);
    db.query("UPDATE runs SET log = '' WHERE run = ?").run(run); // what pruning an old log leaves
    db.close();
    for (const args of [
      ["run", "log", run],
      ["run", "log", run, "--follow"],
    ]) {
      const removed = await cli(args, dir);
      expect({ code: removed.code, stdout: removed.stdout }).toEqual({ code: 1, stdout: "" });
      expect(removed.stderr).toBe(
        `drover: Cannot show the log of run "${run}": it was removed (drover keeps the logs of the newest 200 ended runs)\n`,
      );
    }
  });
});

describe("following a log the supervisor cuts back", () => {
  test("the reader goes on just after what it printed: nothing twice, nothing lost", async () => {
    const project = await tempProject();
    cleanups.push(project.cleanup);
    const file = join(project.dir, "run.log");
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i}\n`).join("");
    const chunks: Buffer[] = [];
    const reader = createLogReader(file, async (b) => void chunks.push(Buffer.from(b)));
    writeFileSync(file, lines.slice(0, 100_000));
    await reader.read();
    // what process.ts does past its bound: a note, then the newest half, in the same file; then more output
    const note = `[drover: the log passed ${MAX_LOG_BYTES} bytes; older output was dropped]\n`;
    writeFileSync(file, note + lines.slice(60_000, 150_000));
    await reader.read();
    writeFileSync(file, note + lines.slice(60_000));
    await reader.read();
    expect(Buffer.concat(chunks).toString()).toBe(lines);
    expect(reader.caughtUp()).toBe(true);
  });
});

describe("following a run's log", () => {
  test("after the first answer only the run's row is looked at again; a row gone ends the follow", async () => {
    const project = await tempProject();
    cleanups.push(project.cleanup);
    const file = join(project.dir, "run.log");
    writeFileSync(file, "one\n");
    const running = { run: "run-aaaaaaaa", state: "running" as const, log: file };
    for (const [last, printed] of [
      [{ ...running, state: "ended" as const }, "one\ntwo\n"],
      [null, "one\n"], // forgotten (the oldest runs' rows go): nothing more will come
    ] as const) {
      writeFileSync(file, "one\n");
      const chunks: Buffer[] = [];
      let polls = 0;
      const poll = () => {
        if (++polls === 1) return running;
        if (last) appendFileSync(file, "two\n");
        return last;
      };
      await printLog(running, { follow: true, pollMs: 1, poll, write: async (b) => void chunks.push(Buffer.from(b)) });
      expect({ polls, printed: Buffer.concat(chunks).toString() }).toEqual({ polls: 2, printed });
    }
  });
});

// --- internal ---

/** A trusted project whose runner `scripted` runs the scripted agent, and its daemon. */
async function _project() {
  const project = await runnerProject({ max: 1 });
  cleanups.push(project.cleanup);
  const d = await startDaemonProcess([BUN, CLI], project.paths);
  cleanups.push(() => d.stop());
  return { d, dir: project.dir, project };
}

/**
 * `npm start` (`drover demo`): the daemon's runners start the scripted agent on the demo's items, from source and
 * from the compiled binary (copied far from any node_modules: the runs start the binary itself). `--speed 10`
 * shortens the agents' work to a second or so.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CRASHING_TITLE } from "../cli/demo-agent.ts";
import { BINARY, BUN, CLI, ROOT } from "./helpers.ts";

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

describe("npm start (drover demo)", () => {
  test("from source: runners start the agents; runs succeed and move their items on; one crashes once, its item gets a note and the retry succeeds; Ctrl-C stops every process and removes the folder", async () => {
    await _demo([BUN, CLI, "demo", "--speed", "10"]);
  }, 60_000);

  test("from the compiled binary, alone in a folder: the same", async () => {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run "npm run build" (npm test does)`);
    const work = realpathSync(mkdtempSync(join(tmpdir(), "drover-demo-bin-")));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const drover = join(work, "drover");
    copyFileSync(BINARY, drover);
    await _demo([drover, "demo", "--speed", "10"], work);
  }, 60_000);
});

// --- internal ---

async function _demo(argv: string[], cwd = ROOT): Promise<void> {
  const proc = Bun.spawn(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  let out = "";
  const reading = (async () => {
    for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk);
  })();
  try {
    await _until(() => out.includes("Ctrl-C"), 20_000);
    const dir = /runners at work on (\S+)/.exec(out)![1]!;
    const url = /URL:\s+(\S+)/.exec(out)![1]!;
    const token = /token:\s+(\S+)/.exec(out)![1]!;
    const get = (path: string) =>
      fetch(url + path, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<any>);

    // the crashing item: its first run crashed, the next one succeeded (runs are listed newest first)
    let runs: any[] = [];
    let crashing: any;
    await _until(async () => {
      runs = await get("/api/runs?limit=1000");
      crashing = ((await get("/api/items")) as any[]).find((i) => i.title === CRASHING_TITLE);
      const mine = runs.filter((r) => r.item_id === crashing?.id && r.state === "ended");
      return mine.length >= 2 && runs.some((r) => r.runner === "reviewer" && r.state === "ended");
    }, 30_000);
    const mine = runs.filter((r) => r.item_id === crashing.id && r.runner === "coder").reverse();
    expect(mine.slice(0, 2).map((r) => [r.reason, r.exit_code])).toEqual([
      ["crashed", null],
      ["success", 0],
    ]);
    expect(new Set(runs.map((r) => r.runner))).toEqual(new Set(["coder", "reviewer"]));
    expect(runs.every((r) => /^(coder-.+-[12]|reviewer-.+-1)$/.test(r.agent_id))).toBe(true);

    // a coder's success moves the item on to qa (then the reviewer takes it), with the usage its run reported
    const success = runs.find((r) => r.runner === "coder" && r.reason === "success");
    const moved = await get(`/api/items/${success.item_id}`);
    expect(["qa", "merge", "done"]).toContain(moved.stage);
    expect(moved.usage.input_tokens).toBeGreaterThan(0);
    // the reviewer moved its item itself, and the trigger took it from merge to done
    const reviewed = runs.find((r) => r.runner === "reviewer" && r.state === "ended");
    expect(reviewed.reason).toBe("moved");
    await _until(async () => (await get(`/api/items/${reviewed.item_id}`)).stage === "done", 10_000);

    // the crash's note: the reason and the end of the run's log
    const item = await get(`/api/items/${crashing.id}`);
    expect(item.notes[0].text).toContain("crashed (signal SIGKILL)");
    expect(item.notes[0].text).toContain("out of memory");
    expect(["qa", "merge", "done"]).toContain(item.stage);
    expect(out).toContain(`crashed  "${CRASHING_TITLE}": released, to be retried, with a note:`);
    expect(out).toMatch(new RegExp(`finished "${CRASHING_TITLE}" → `));

    expect((await get("/api/timers")).length).toBe(1);
    expect((await get("/api/triggers")).length).toBe(1);

    // Ctrl-C while runs are going: the daemon stops them, the demo removes its folder
    await _until(async () => (await get("/api/runs?state=running")).length > 0, 20_000);
    const pids = ((await get("/api/runs?limit=1000")) as any[]).map((r) => r.pid as number);
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect(existsSync(dir)).toBe(false);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  } finally {
    if (proc.exitCode === null) {
      proc.kill("SIGINT"); // a failed check: still let the daemon stop its runs
      await Promise.race([proc.exited, Bun.sleep(15_000)]);
      proc.kill("SIGKILL");
    }
    await reading;
  }
}

async function _until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("Timed out waiting");
    await Bun.sleep(100);
  }
}

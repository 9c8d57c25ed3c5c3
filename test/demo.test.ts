/**
 * `npm start` (`drover demo`): the daemon's runners start the scripted agent on the demo's items and drover merges
 * their branches into the throwaway repository's `main` — one of them after a conflict, on the second try — from
 * source and from the compiled binary (copied far from any node_modules: the runs start the binary itself).
 * `--speed 10` shortens the agents' work to a second or so.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CRASHING_TITLE, DEMO_BASE, SHARED_EDITS, SHARED_FILE } from "../cli/demo-agent.ts";
import { BINARY, BUN, CLI, ROOT, until } from "./helpers.ts";

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

describe("npm start (drover demo)", () => {
  test("from source: runners start the agents; runs commit and move their items on; one crashes once, its item gets a note and the retry succeeds; drover merges the items into main, one after a conflict that went back to coding and landed on the second try; Ctrl-C stops every process and removes the folder", async () => {
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
    await until(() => out.includes("Ctrl-C"), 20_000);
    const dir = /runners at work on (\S+)/.exec(out)![1]!;
    const url = /URL:\s+(\S+)/.exec(out)![1]!;
    const token = /token:\s+(\S+)/.exec(out)![1]!;
    const get = (path: string) =>
      fetch(url + path, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<any>);

    // the crashing item: its first run crashed, the next one succeeded (runs are listed newest first)
    let runs: any[] = [];
    let items: any[] = [];
    let crashing: any;
    await until(async () => {
      runs = await get("/api/runs?limit=1000");
      items = await get("/api/items");
      crashing = items.find((i) => i.title === CRASHING_TITLE);
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
    // the reviewer moved its item itself, and drover merged it: done, its merge commit on main
    const reviewed = runs.find((r) => r.runner === "reviewer" && r.state === "ended");
    expect(reviewed.reason).toBe("moved");
    await until(async () => (await get(`/api/items/${reviewed.item_id}`)).stage === "done", 10_000);
    const git = (...args: string[]) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" }).trim();
    const onBase = (sha: string) => {
      try {
        git("merge-base", "--is-ancestor", sha, DEMO_BASE);
        return true;
      } catch {
        return false;
      }
    };
    const landed = await get(`/api/items/${reviewed.item_id}`);
    expect(landed.merged).toMatchObject({ base: DEMO_BASE, strategy: "merge" });
    expect(onBase(landed.merged.sha)).toBe(true);

    // the two items editing one line of config.txt: both landed, the second to land after a conflict
    const [first, second] = Object.keys(SHARED_EDITS).map((title) => items.find((i) => i.title === title)!);
    const done = async () => {
      const both = await Promise.all([first, second].map((i) => get(`/api/items/${i!.id}`)));
      return both.every((i) => i.stage === "done");
    };
    await until(done, 30_000);
    const results = (await get("/api/merge?limit=500")).results as any[]; // newest first
    const conflicts = results.filter((r) => r.result === "conflict");
    expect(conflicts.map((r) => r.detail)).toEqual([{ files: [SHARED_FILE] }]);
    const twice = await get(`/api/items/${conflicts[0].item_id}`);
    expect([first!.id, second!.id]).toContain(twice.id);
    const mergedAfter = results.slice(0, results.indexOf(conflicts[0])).filter((r) => r.item_id === twice.id);
    expect(mergedAfter.map((r) => [r.result, r.sha])).toEqual([["merged", twice.merged.sha]]);
    expect(twice.notes.some((n: any) => n.text.includes(`conflicts in "${SHARED_FILE}"`))).toBe(true);
    // its next coder run found the note in its prompt and merged main into its branch
    const resolving = ((await get(`/api/runs?item=${twice.id}&limit=100`)) as any[]).find((r) => r.runner === "coder");
    expect((await get(`/api/runs/${resolving.run}`)).tail).toContain(
      `the notes say landing it conflicted in "${SHARED_FILE}": merging ${DEMO_BASE} into this branch`,
    );
    expect(out).toContain(`conflict "${twice.title}" in ${SHARED_FILE}: back to coding, with a note`);
    expect(out).toMatch(new RegExp(`landed   "${twice.title}" on ${DEMO_BASE}: [0-9a-f]{7} \\(merge\\) → done`));

    // main holds both items' work, the conflict resolved on the side of the one that landed second; every merged
    // sha is on main; the checkout at the root followed main and has no changes
    for (const i of [first!, second!]) {
      const item = await get(`/api/items/${i.id}`);
      expect(onBase(item.merged.sha)).toBe(true);
      expect(git("show", `${DEMO_BASE}:work/${i.id}.md`)).toStartWith(`# ${i.title}\n`);
    }
    expect(git("show", `${DEMO_BASE}:${SHARED_FILE}`)).toContain(`\n${SHARED_EDITS[twice.title]}\n`);
    expect(git("show", `${DEMO_BASE}:${SHARED_FILE}`)).not.toContain("<<<<<<<");
    expect(git("status", "--porcelain", "--untracked-files=no")).toBe("");
    expect(git("rev-parse", "HEAD")).toBe(git("rev-parse", DEMO_BASE));

    // the crash's note: the reason and the end of the run's log
    const item = await get(`/api/items/${crashing.id}`);
    expect(item.notes[0].text).toContain("crashed (signal SIGKILL)");
    expect(item.notes[0].text).toContain("out of memory");
    expect(item.stage).toBe("done");
    expect(out).toContain(`crashed  "${CRASHING_TITLE}": released, to be retried, with a note:`);
    expect(out).toMatch(new RegExp(`finished "${CRASHING_TITLE}" → `));

    expect((await get("/api/timers")).length).toBe(1);
    expect((await get("/api/triggers")).length).toBe(0); // no trigger: the merge feature moves merge → done

    // Ctrl-C while runs are going: the daemon stops them, the demo removes its folder
    await until(async () => (await get("/api/runs?state=running")).length > 0, 20_000);
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

import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { BUN, CLI, ROOT } from "./helpers.ts";

describe("npm start (drover demo)", () => {
  test("three scripted agents at work; Ctrl-C stops every process it started and removes the folder", async () => {
    const proc = Bun.spawn([BUN, CLI, "demo"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("Ctrl-C")) out += new TextDecoder().decode((await reader.read()).value);
    const dir = /agents at work on (\S+)/.exec(out)![1]!;
    const url = /URL:\s+(\S+)/.exec(out)![1]!;
    const token = /token:\s+(\S+)/.exec(out)![1]!;
    const pids = [...out.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(3);
    const get = (path: string) =>
      fetch(url + path, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<any[]>);
    const deadline = Date.now() + 20_000;
    let agents: any[] = [];
    let moving: any[] = [];
    while (Date.now() < deadline) {
      agents = await get("/api/agents");
      moving = (await get("/api/items")).filter((i) => i.stage !== "backlog");
      if (agents.length === 3 && moving.length > 0) break;
      await Bun.sleep(250);
    }
    expect(agents.map((a) => a.agent_id).sort()).toEqual(["ada", "grace", "linus"]);
    expect(moving.length).toBeGreaterThan(0);
    expect((await get("/api/timers")).length).toBe(1);
    expect((await get("/api/triggers")).length).toBe(1);
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect(existsSync(dir)).toBe(false);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    await expect(fetch(url + "/health")).rejects.toThrow();
  }, 40_000);
});

import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { BUN, CLI, ROOT } from "./helpers.ts";

describe("npm start (drover demo)", () => {
  test("runs a daemon on a throwaway project, prints URL and token, and Ctrl-C removes it all", async () => {
    const proc = Bun.spawn([BUN, CLI, "demo"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("Ctrl-C")) out += new TextDecoder().decode((await reader.read()).value);
    const dir = /demo project: (\S+)/.exec(out)![1]!;
    const url = /URL:\s+(\S+)/.exec(out)![1]!;
    const token = /token:\s+(\S+)/.exec(out)![1]!;
    const items = await fetch(url + "/api/items", { headers: { authorization: `Bearer ${token}` } });
    expect(((await items.json()) as unknown[]).length).toBe(3);
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect(existsSync(dir)).toBe(false);
    await expect(fetch(url + "/health")).rejects.toThrow();
  });
});

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFileLock } from "../hub/lock.ts";
import { BUN, ROOT } from "./helpers.ts";

describe("hub lock", () => {
  test("excludes other processes, and a holder killed with -9 never leaves it held", async () => {
    const dir = mkdtempSync(join(tmpdir(), "drover-lock-"));
    const file = join(dir, "hub.lock");
    const holder = Bun.spawn(
      [
        BUN,
        "-e",
        `const { createFileLock } = await import(${JSON.stringify(join(ROOT, "hub/lock.ts"))}); const l = createFileLock(${JSON.stringify(file)}); await l.acquire(); console.log("held"); await Bun.sleep(60000);`,
      ],
      { stdout: "pipe" },
    );
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
    const lock = createFileLock(file, { timeoutMs: 300 });
    await expect(lock.acquire()).rejects.toThrow(/held by another process/);
    holder.kill("SIGKILL");
    await holder.exited;
    const started = Date.now();
    await lock.acquire();
    expect(Date.now() - started).toBeLessThan(300);
    lock.release();
    lock.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

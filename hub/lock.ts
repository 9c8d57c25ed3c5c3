/**
 * @module The cross-process hub lock: an IMMEDIATE transaction on a small SQLite file. The operating system
 * drops the lock when its process dies, so a `kill -9` can never leave the hub locked.
 */
import { Database } from "bun:sqlite";
import { DroverError } from "../core/errors.ts";

export interface FileLock {
  acquire(): Promise<void>;
  release(): void;
  close(): void;
}

export function createFileLock(file: string, options: { timeoutMs?: number } = {}): FileLock {
  const db = new Database(file, { create: true });
  db.run("PRAGMA busy_timeout = 0");
  const timeout = options.timeoutMs ?? 30_000;
  // the SQLite transaction excludes other processes; `busy` and this queue, other callers in this process
  let busy = false;
  const waiting: Array<() => void> = [];
  const wakeNext = () => waiting.shift()?.();
  return {
    async acquire() {
      while (busy) await new Promise<void>((resolve) => waiting.push(resolve));
      busy = true;
      const deadline = Date.now() + timeout;
      for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
        try {
          db.run("BEGIN IMMEDIATE");
          return;
        } catch (err) {
          if (!String((err as Error).message).includes("locked") && (err as { code?: string }).code !== "SQLITE_BUSY") {
            busy = false;
            wakeNext();
            throw err;
          }
        }
        if (Date.now() > deadline) {
          busy = false;
          wakeNext();
          throw new DroverError("internal", `Cannot lock the hub: "${file}" held by another process for ${timeout} ms`);
        }
        await Bun.sleep(wait);
      }
    },
    release() {
      if (!db.inTransaction) return;
      db.run("COMMIT");
      busy = false;
      wakeNext();
    },
    close() {
      if (db.inTransaction) db.run("ROLLBACK");
      db.close();
    },
  };
}

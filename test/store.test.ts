import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate, openStore } from "../core/store.ts";

describe("store", () => {
  test("WAL and busy_timeout are set; migrations run once each, in order", () => {
    const dir = mkdtempSync(join(tmpdir(), "drover-store-"));
    try {
      const db = openStore(join(dir, "s.db"));
      expect(db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()!.journal_mode).toBe("wal");
      expect(db.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()!.timeout).toBe(5000);
      const m = ["CREATE TABLE a (x INTEGER)", "INSERT INTO a VALUES (1); INSERT INTO a VALUES (2)"];
      expect(migrate(db, "f", m)).toBe(2);
      expect(migrate(db, "f", m)).toBe(2);
      expect(migrate(db, "f", [...m, "INSERT INTO a VALUES (3)"])).toBe(3);
      expect(db.query<{ n: number }, []>("SELECT count(*) AS n FROM a").get()!.n).toBe(3);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

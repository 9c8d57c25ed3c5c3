/**
 * @module The local SQLite store (`.drover/state.db`): WAL, a busy timeout so a CLI process and the daemon
 * can write side by side, per-feature migrations, and what happens when the file is damaged: it is a cache of
 * the hub plus a few local tables, so it is set aside and built again rather than failing every command.
 */
import { Database } from "bun:sqlite";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** Opens (or creates) the database with the pragmas every connection needs. */
export function openStore(file: string): Database {
  const db = new Database(file, { create: true, strict: true });
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA foreign_keys = ON");
  db.run("CREATE TABLE IF NOT EXISTS _migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)");
  return db;
}

/**
 * Applies a feature's migrations that have not run yet, each in its own immediate transaction.
 * A migration is appended to the list, never edited: its index is its version.
 */
export function migrate(db: Database, feature: string, migrations: readonly string[]): number {
  const row = db.query<{ version: number }, [string]>("SELECT version FROM _migrations WHERE feature = ?").get(feature);
  let version = row?.version ?? 0;
  for (; version < migrations.length; version++) {
    const sql = migrations[version]!;
    const next = version + 1;
    db.transaction(() => {
      const again = db
        .query<{ version: number }, [string]>("SELECT version FROM _migrations WHERE feature = ?")
        .get(feature);
      if ((again?.version ?? 0) >= next) return; // another process got here first
      db.run(sql);
      db.run(
        "INSERT INTO _migrations (feature, version) VALUES (?, ?) ON CONFLICT(feature) DO UPDATE SET version = excluded.version",
        [feature, next],
      );
    }).immediate();
  }
  return version;
}

/** What was found wrong with `state.db`, where the damaged file went, and what cannot come back from the hub. */
export interface StoreDamage {
  at: string;
  reason: string;
  moved_to: string;
  lost: string[];
}

/**
 * Opens `state.db` and runs `prepare` (the migrations) on it. Damage — the file is not a database, a page is
 * corrupt, or (with `deep`) `PRAGMA quick_check` finds a fault — sets the file aside as `state.db.damaged-<time>`
 * and starts a new one, which the hub fills again; `damage` says what happened and what could not come back.
 */
export function openCheckedStore(
  file: string,
  options: {
    deep: boolean;
    now: number;
    prepare: (db: Database) => void /** What lives only in this file: lost with it. */;
    localOnly: readonly string[];
  },
): { db: Database; damage?: StoreDamage } {
  let db: Database | undefined;
  try {
    db = openStore(file);
    if (options.deep) {
      const verdict = db.query<{ quick_check: string }, []>("PRAGMA quick_check(1)").get()?.quick_check;
      if (verdict !== "ok") throw Object.assign(new Error(`quick_check: ${verdict}`), { code: "SQLITE_CORRUPT" });
    }
    options.prepare(db);
    return { db };
  } catch (err) {
    if (!isStoreDamage(err)) throw err;
    try {
      db?.close();
    } catch {
      // a damaged file may not even close cleanly
    }
    const damage = _setAside(file, (err as Error).message.replace(/\s+/g, " ").trim(), {
      now: options.now,
      lost: [...options.localOnly],
    });
    const fresh = openStore(file);
    options.prepare(fresh);
    return { db: fresh, damage };
  }
}

/** True for SQLite's "this file is damaged" errors (not for a busy or read-only database). */
export function isStoreDamage(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? "");
  return code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB");
}

/** The report of the last time `state.db` was set aside, or null. */
export function readDamageReport(file: string): StoreDamage | null {
  try {
    return JSON.parse(readFileSync(_reportFile(file), "utf8")) as StoreDamage;
  } catch {
    return null;
  }
}

// --- internal ---

function _reportFile(file: string): string {
  return join(dirname(file), "state-rebuilt.json");
}

function _setAside(file: string, reason: string, { now, lost }: { now: number; lost: string[] }): StoreDamage {
  const at = new Date(now).toISOString();
  const moved_to = `${file}.damaged-${at.replace(/[:.]/g, "-")}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    if (existsSync(file + suffix)) renameSync(file + suffix, moved_to + suffix);
  }
  const damage: StoreDamage = { at, reason, moved_to, lost };
  writeFileSync(_reportFile(file), JSON.stringify(damage, null, 2) + "\n", { mode: 0o600 });
  return damage;
}

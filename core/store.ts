/**
 * @module The local SQLite store (`.drover/state.db`): WAL, a busy timeout so a CLI process and the daemon
 * can write side by side, and per-feature migrations.
 */
import { Database } from "bun:sqlite";

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
      const again = db.query<{ version: number }, [string]>("SELECT version FROM _migrations WHERE feature = ?").get(feature);
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

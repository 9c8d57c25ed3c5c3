/**
 * @module The hub's bookkeeping in `state.db`, one owner per table: `hub_state` (the applied and remote heads,
 * sync times, the last error), `hub_keys` (what keyed ops answered, kept with their commit) and `hub_invalid`
 * (hub files that cannot be used, each reported once per content).
 */
import type { Database } from "bun:sqlite";
import { KEY_TTL_MS } from "../core/idempotency.ts";

export interface Answer {
  key: string;
  opId: string;
  result: unknown;
}

export interface InvalidFile {
  path: string;
  reason: string;
  seen_at: string;
}

export interface HubRecords {
  state(key: string): string | null;
  setState(key: string, value: string | null): void;
  /** A keyed op's answer kept with its commit, or null. */
  answered(key: string): { opId: string; result: unknown } | null;
  /** Keeps answers (and forgets those older than the keys' lifetime). */
  keepAnswers(answers: readonly Answer[], now: number): void;
  /** Records an invalid file; false when the same content was recorded already (nothing new to report). */
  markInvalid(file: InvalidFile, digest: string): boolean;
  clearInvalid(path: string): void;
  invalidFiles(): InvalidFile[];
}

export function createHubRecords(db: Database): HubRecords {
  return {
    state: (key) =>
      db.query<{ value: string }, [string]>("SELECT value FROM hub_state WHERE key = ?").get(key)?.value ?? null,
    setState(key, value) {
      if (value === null) db.query("DELETE FROM hub_state WHERE key = ?").run(key);
      else
        db.query(
          "INSERT INTO hub_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        ).run(key, value);
    },
    answered(key) {
      const row = db
        .query<{ op_id: string; result: string }, [string]>("SELECT op_id, result FROM hub_keys WHERE key = ?")
        .get(key);
      return row ? { opId: row.op_id, result: JSON.parse(row.result) } : null;
    },
    keepAnswers(answers, now) {
      if (!answers.length) return;
      db.query("DELETE FROM hub_keys WHERE at < ?").run(now - KEY_TTL_MS);
      const insert = db.query("INSERT OR IGNORE INTO hub_keys (key, op_id, result, at) VALUES (?, ?, ?, ?)");
      for (const a of answers) insert.run(a.key, a.opId, JSON.stringify(a.result ?? null), now);
    },
    markInvalid({ path, reason, seen_at }, digest) {
      const known = db.query<{ digest: string }, [string]>("SELECT digest FROM hub_invalid WHERE path = ?").get(path);
      if (known?.digest === digest) return false;
      db.query("INSERT OR REPLACE INTO hub_invalid (path, reason, digest, seen_at) VALUES (?, ?, ?, ?)").run(
        path,
        reason,
        digest,
        seen_at,
      );
      return true;
    },
    clearInvalid(path) {
      db.query("DELETE FROM hub_invalid WHERE path = ?").run(path);
    },
    invalidFiles: () => db.query<InvalidFile, []>("SELECT path, reason, seen_at FROM hub_invalid ORDER BY path").all(),
  };
}

/**
 * @module Idempotency keys: a client whose connection broke, or who got a 5xx, retries a mutating op with the same
 * key (HTTP header `Idempotency-Key`, MCP and CLI field `idempotency_key`) and gets the first answer instead of a
 * second effect. The answer (or the refusal) is kept here for 24 h; the hub keeps the same for each hub op inside
 * the commit's own transaction (hub/writer.ts), so even an op whose answer was lost after its commit — a
 * full disk, a crash — is answered, not run again. Ops an op runs get keys derived from its key, in order.
 */
import type { Database } from "bun:sqlite";
import { z } from "zod";
import { DroverError, type ErrorCode } from "./errors.ts";
import { canonicalJson } from "./json.ts";

/** How long a key is remembered. */
export const KEY_TTL_MS = 24 * 3600_000;

export const keyField = z
  .string()
  .regex(/^[\x21-\x7e]{1,200}$/, "must be 1 to 200 visible ASCII characters")
  .optional()
  .describe("A retry with the same key within 24 h answers the first result instead of running again");

export const idempotencyMigrations = [
  `CREATE TABLE op_keys (key TEXT PRIMARY KEY, op TEXT NOT NULL, hash TEXT NOT NULL, result TEXT, error TEXT, at INTEGER NOT NULL);
   CREATE INDEX op_keys_at ON op_keys (at);`,
] as const;

export type Remembered = { result: unknown } | { error: DroverError };

export interface KeyStore {
  /** The first outcome under `key`; throws `conflict` when the key came with another op or input. */
  recall(key: string, request: { op: string; input: unknown }): Remembered | null;
  /** Keeps a success, or a refusal (a 4xx: the retry is refused the same way); a 5xx is not kept. */
  remember(key: string, request: { op: string; input: unknown }, outcome: Remembered, now: number): void;
}

export function createKeyStore(db: Database): KeyStore {
  return {
    recall(key, request) {
      const row = db
        .query<{ op: string; hash: string; result: string | null; error: string | null }, [string]>(
          "SELECT op, hash, result, error FROM op_keys WHERE key = ?",
        )
        .get(key);
      if (!row) return null;
      if (row.hash !== _hash(request)) {
        throw new DroverError(
          "conflict",
          `Cannot use idempotency key "${key}" again: it was used for another request (op "${row.op}")`,
        );
      }
      if (row.error === null) return { result: row.result === null ? undefined : JSON.parse(row.result) };
      const e = JSON.parse(row.error) as { code: ErrorCode; message: string; details?: unknown };
      return { error: new DroverError(e.code, e.message, { details: e.details }) };
    },
    remember(key, request, outcome, now) {
      if ("error" in outcome && outcome.error.status >= 500) return;
      const result = "result" in outcome && outcome.result !== undefined ? JSON.stringify(outcome.result) : null;
      const error = "error" in outcome ? JSON.stringify(outcome.error.toJSON()) : null;
      db.transaction(() => {
        db.query("DELETE FROM op_keys WHERE at < ?").run(now - KEY_TTL_MS);
        db.query("INSERT OR REPLACE INTO op_keys (key, op, hash, result, error, at) VALUES (?, ?, ?, ?, ?, ?)").run(
          key,
          request.op,
          _hash(request),
          result,
          error,
          now,
        );
      })();
    },
  };
}

// --- internal ---

function _hash(request: { op: string; input: unknown }): string {
  return new Bun.CryptoHasher("sha256").update(`${request.op}\0${canonicalJson(request.input)}`).digest("hex");
}

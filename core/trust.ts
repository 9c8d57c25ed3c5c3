/**
 * @module Shared config is data until this machine trusts it. `.drover/config.toml` is committed: anyone who can
 * push to the project writes it. Features declare which of their keys have effects (a value that picks where a
 * credential goes, a branch git will act on, a command to run); such a value takes effect only once `drover trust`
 * on this machine approved its exact content (a hash in `state.db`). Until then the last value this machine
 * approved — or the default — stays in force, and the runtime says what waits and which command approves it.
 * Values from this machine's environment are its own, and trusted.
 */
import type { Database } from "bun:sqlite";
import { type Clock, iso } from "./clock.ts";
import type { Config } from "./config.ts";
import { canonicalJson } from "./json.ts";

/** Declared by a feature: for a dotted config key, whether a value of it has effects (then it needs trust). */
export type TrustRule = (value: unknown) => boolean;

/** A value of the file that waits for approval, and the value in force meanwhile. */
export interface Untrusted {
  key: string;
  value: unknown;
  using: unknown;
}

export const TRUST_COMMAND = "drover trust";

export const trustMigrations = [
  "CREATE TABLE trust (key TEXT PRIMARY KEY, value TEXT NOT NULL, hash TEXT NOT NULL, approved_at TEXT NOT NULL)",
] as const;

/**
 * Replaces, in `config`, every effectful value this machine has not approved by the last one it approved (or the
 * default); returns what waits. `fromEnv` names keys set by this machine's environment.
 */
export function applyTrust(
  config: Config,
  options: { db: Database; rules: Record<string, TrustRule>; defaults: Config; fromEnv: Set<string> },
): Untrusted[] {
  const waiting: Untrusted[] = [];
  for (const [key, effectful] of Object.entries(options.rules)) {
    const value = _get(config, key);
    if (options.fromEnv.has(key) || !effectful(value)) continue;
    const row = options.db
      .query<{ value: string; hash: string }, [string]>("SELECT value, hash FROM trust WHERE key = ?")
      .get(key);
    if (row?.hash === _hash(key, value)) continue;
    const using = row ? JSON.parse(row.value) : _get(options.defaults, key);
    _set(config, key, using);
    waiting.push({ key, value, using });
  }
  return waiting;
}

/** Approves the values that wait: from now on they are in force on this machine. */
export function approve(db: Database, waiting: Untrusted[], clock: Clock): void {
  const upsert = db.query("INSERT OR REPLACE INTO trust (key, value, hash, approved_at) VALUES (?, ?, ?, ?)");
  db.transaction(() => {
    for (const u of waiting) upsert.run(u.key, JSON.stringify(u.value), _hash(u.key, u.value), iso(clock.now()));
  })();
}

/** A short fingerprint of this machine's approvals: it changes when `drover trust` approves anything. */
export function approvals(db: Database): string {
  return db.query<{ s: string }, []>("SELECT count(*) || ':' || coalesce(max(approved_at), '') AS s FROM trust").get()!
    .s;
}

/** Copies the values of `keys` from one config to another (what is in force after approvals changed). */
export function copyKeys(from: Config, to: Config, keys: string[]): void {
  for (const key of keys) _set(to, key, _get(from, key));
}

/** One readable line saying what waits and the command that approves it. */
export function untrustedLine(waiting: Untrusted[], file: string): string {
  const keys = waiting.map((u) => `"${u.key}"`).join(", ");
  return `${waiting.length === 1 ? "The value" : "Values"} of ${keys} in "${file}" ${waiting.length === 1 ? "waits" : "wait"} for this machine's approval: run "${TRUST_COMMAND}"`;
}

// --- internal ---

function _hash(key: string, value: unknown): string {
  return new Bun.CryptoHasher("sha256").update(`${key}\0${canonicalJson(value)}`).digest("hex");
}

function _get(config: Config, key: string): unknown {
  let v: unknown = config;
  for (const part of key.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

function _set(config: Config, key: string, value: unknown): void {
  const parts = key.split(".");
  let v = config as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) v = v[part] as Record<string, unknown>;
  v[parts.at(-1)!] = value;
}

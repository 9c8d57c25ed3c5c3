/**
 * @module Applying ops to hub files: the transaction a mutation sees, and the loop that runs a list of ops
 * over a base (the working files for a local batch, the remote's tree for a replay) and collects what
 * changed. The same code applies an op the first time and replays it after another machine's push.
 */
import { DroverError } from "../core/errors.ts";
import type { EventCause } from "../core/events.ts";
import { canonicalJson } from "../core/json.ts";
import type { FileChanges } from "./repo.ts";

/** One op as the audit log and the outbox keep it. */
export interface OpRecord {
  /** Unique per op: lets a restarted machine see which of its ops a remote commit already carries. */
  id: string;
  op: string;
  args: Record<string, unknown>;
  machine_id: string;
  at: string;
  /** Set when a timer or trigger action made the op: its events carry it, so trigger chains stay bounded. */
  cause?: EventCause;
  /** The idempotency key the op was made under: a retry is answered from the commit, not applied again. */
  key?: string;
}

/** What a mutation sees: hub files as parsed JSON, with earlier writes of the same commit applied. */
export interface HubTx {
  read(path: string): unknown;
  write(path: string, value: unknown): void;
  remove(path: string): void;
  now: number;
}

/**
 * A replayable mutation: its effect depends only on `args` and the files it reads. Choices made on the
 * first run (a new id, the item `item.next` picked) are written back into `args`, so a replay repeats them.
 */
export type Apply<R = unknown> = (args: Record<string, unknown>, tx: HubTx) => R;

export interface ApplyEntry {
  record: OpRecord;
  apply: Apply;
}

export interface Applied {
  /** Every file written, with its final content (null = removed). */
  overlay: FileChanges;
  /** What each written file held in the base. */
  before: Map<string, string | null>;
  results: Array<{ record: OpRecord; result?: unknown; error?: unknown }>;
}

/** Runs the ops in order over `base`; an op that throws changes nothing and is reported with its error. */
export function applyOps(entries: ApplyEntry[], base: (path: string) => string | null): Applied {
  const overlay: FileChanges = new Map();
  const before = new Map<string, string | null>();
  const results: Applied["results"] = [];
  for (const { record, apply } of entries) {
    const own: FileChanges = new Map();
    const tx = _tx(base, { overlay, own, before }, Date.parse(record.at));
    try {
      const result = apply(record.args, tx);
      for (const [k, v] of own) overlay.set(k, v);
      results.push({ record, result });
    } catch (error) {
      results.push({ record, error });
    }
  }
  return { overlay, before, results };
}

/** The commit message: a summary line, a blank line, then one JSON line per op (the audit log). */
export function formatCommitMessage(ops: OpRecord[]): string {
  const names = [...new Set(ops.map((o) => o.op))].join(", ");
  return `drover: ${ops.length} op${ops.length === 1 ? "" : "s"} (${names})\n\n${ops.map((o) => JSON.stringify(o)).join("\n")}\n`;
}

/** Whether a commit message is one drover wrote (a round's commit may carry no op: only heartbeats). */
export function isDroverCommit(message: string): boolean {
  return /^drover: \d+ ops? \(/.test(message);
}

/** The ops of a commit message; lines that are not op JSON are ignored. */
export function parseCommitMessage(message: string): OpRecord[] {
  const ops: OpRecord[] = [];
  for (const line of message.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const op = JSON.parse(line) as OpRecord;
      if (typeof op.op === "string") ops.push(op);
    } catch {
      // a hand-written commit: not ours to read
    }
  }
  return ops;
}

// --- internal ---

function _tx(
  base: (path: string) => string | null,
  state: { overlay: FileChanges; own: FileChanges; before: Map<string, string | null> },
  now: number,
): HubTx {
  const { overlay, own, before } = state;
  function text(path: string): string | null {
    if (own.has(path)) return own.get(path)!;
    if (overlay.has(path)) return overlay.get(path)!;
    if (!before.has(path)) before.set(path, base(path));
    return before.get(path)!;
  }
  function set(path: string, content: string | null) {
    text(path); // remember what it was in the base
    own.set(path, content);
  }
  return {
    now,
    read(path) {
      const t = text(path);
      if (t === null) return null;
      try {
        return JSON.parse(t);
      } catch {
        throw new DroverError("conflict", `Cannot read hub file "${path}": it is not valid JSON`);
      }
    },
    write: (path, value) => set(path, canonicalJson(value)),
    remove: (path) => set(path, null),
  };
}

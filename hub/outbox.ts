/**
 * @module The outbox: this machine's ops that a carrier (sync) must take to the remote, each pending until it is
 * confirmed there or rejected with its reason. The writer adds a commit's ops in the commit's own transaction;
 * the carrier reads what waits and decides. The one place that knows the table.
 */
import type { Database } from "bun:sqlite";
import type { OpRecord } from "./apply.ts";

export interface Outbox {
  /** A commit's ops, pending (ops already there are left as they are). */
  add(ops: readonly OpRecord[], commit: string): void;
  /** What waits, oldest first. */
  pending(): OpRecord[];
  /** Ops waiting to be carried. */
  pendingCount(): number;
  /** Where an op stands, or null when this machine has no record of it. */
  statusOf(
    opId: string,
  ): { status: "pending" | "confirmed" | "rejected"; code: string | null; reason: string | null } | null;
  /** Marks ops confirmed on the remote, or rejected there with the refusal. */
  decide(
    decided: { confirmed: readonly string[]; rejected: ReadonlyArray<{ opId: string; code: string; reason: string }> },
    at: string,
  ): void;
  /** Puts ops back ahead of the ones already waiting, keeping the order of both. */
  requeue(ops: readonly OpRecord[], commit: string): void;
  /** Forgets ops decided before `cutoff` (ISO time); what waits is never forgotten. Returns how many went. */
  forget(cutoff: string): number;
}

export function createOutbox(db: Database): Outbox {
  return {
    add(ops, commit) {
      const insert = db.query(
        "INSERT OR IGNORE INTO outbox (op_id, name, op, commit_oid, status) VALUES (?, ?, ?, ?, 'pending')",
      );
      for (const op of ops) insert.run(op.id, op.op, JSON.stringify(op), commit);
    },
    pending() {
      return db
        .query<{ op: string }, []>("SELECT op FROM outbox WHERE status = 'pending' ORDER BY seq")
        .all()
        .map((r) => JSON.parse(r.op) as OpRecord);
    },
    pendingCount() {
      return db.query<{ n: number }, []>("SELECT count(*) AS n FROM outbox WHERE status = 'pending'").get()!.n;
    },
    statusOf(opId) {
      type Row = { status: "pending" | "confirmed" | "rejected"; code: string | null; reason: string | null };
      return db.query<Row, [string]>("SELECT status, code, reason FROM outbox WHERE op_id = ?").get(opId);
    },
    decide({ confirmed, rejected }, at) {
      const confirm = db.query(
        "UPDATE outbox SET status = 'confirmed', decided_at = ? WHERE op_id = ? AND status = 'pending'",
      );
      for (const id of confirmed) confirm.run(at, id);
      const reject = db.query(
        "UPDATE outbox SET status = 'rejected', code = ?, reason = ?, decided_at = ? WHERE op_id = ?",
      );
      for (const r of rejected) reject.run(r.code, r.reason, at, r.opId);
    },
    forget(cutoff) {
      // rows of the first format carry no decision time: their creation time stands in (the index
      // `outbox_decided` holds this very expression and condition, so the sweep reads only what it deletes)
      return db
        .query("DELETE FROM outbox WHERE status <> 'pending' AND coalesce(decided_at, created_at) < ?")
        .run(cutoff).changes;
    },
    requeue(ops, commit) {
      const again = new Set(ops.map((o) => o.id));
      type Row = { op_id: string; name: string; op: string; commit_oid: string };
      const waiting = db
        .query<Row, []>("SELECT op_id, name, op, commit_oid FROM outbox WHERE status = 'pending' ORDER BY seq")
        .all()
        .filter((w) => !again.has(w.op_id));
      const remove = db.query("DELETE FROM outbox WHERE op_id = ?");
      const insert = db.query(
        "INSERT INTO outbox (op_id, name, op, commit_oid, status) VALUES (?, ?, ?, ?, 'pending')",
      );
      // new rows, so the sequence puts the older ops first
      for (const o of ops) remove.run(o.id);
      for (const w of waiting) remove.run(w.op_id);
      for (const o of ops) insert.run(o.id, o.op, JSON.stringify(o), commit);
      for (const w of waiting) insert.run(w.op_id, w.name, w.op, w.commit_oid);
    },
  };
}

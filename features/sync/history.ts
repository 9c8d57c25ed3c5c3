/**
 * @module Where the remote branch stands against the last head this machine confirmed. It only ever moves forward
 * in normal use; a rewind (force-push to an older commit, a deleted branch) is pushed back, and a rewrite stops
 * sync until a person chooses: `sync adopt` takes the remote's history and sends this machine's ops that it lacks
 * again, `sync restore` forces the confirmed history back. Either way the other side's head is kept under
 * `refs/drover/diverged/`, so no confirmed op disappears without a trace.
 */
import fs from "node:fs";
import type { Database } from "bun:sqlite";
import { parseCommitMessage, type OpRecord } from "./apply.ts";
import type { HubRepo } from "./repo.ts";

/**
 * `forward`: the remote is the confirmed head or descends from it; `behind`: it is an ancestor of it (rewound);
 * `gone`: the branch was deleted; `rewritten`: neither.
 */
export type RemoteHistory = "forward" | "behind" | "gone" | "rewritten";

/** How many commits of each side the op comparison of `sync adopt` looks at. */
const SCAN = 5000;

export async function compareHistory(repo: HubRepo, confirmed: string | null, remote: string | null): Promise<RemoteHistory> {
  if (confirmed === null || remote === confirmed) return "forward";
  if (remote === null) return "gone";
  if (await repo.isAncestor(confirmed, remote)) return "forward";
  return (await repo.isAncestor(remote, confirmed)) ? "behind" : "rewritten";
}

/** Keeps a head that is about to leave the branch under `refs/drover/diverged/<side>-<oid>`; returns the ref. */
export function keepHead(repo: HubRepo, side: "local" | "remote", oid: string): string {
  const ref = `refs/drover/diverged/${side}-${oid.slice(0, 12)}`;
  fs.mkdirSync(`${repo.gitdir}/refs/drover/diverged`, { recursive: true });
  fs.writeFileSync(`${repo.gitdir}/${ref}`, oid + "\n");
  return ref;
}

/** This machine's ops in `local`'s history that `remote`'s history does not carry, oldest first. */
export async function opsMissingFrom(repo: HubRepo, options: { local: string; remote: string; machineId: string }): Promise<OpRecord[]> {
  const theirs = await repo.log({ from: options.remote, depth: SCAN });
  const commits = new Set(theirs.map((c) => c.oid));
  const carried = new Set(theirs.flatMap((c) => parseCommitMessage(c.message).map((o) => o.id)));
  const missing: OpRecord[] = [];
  for (const c of await repo.log({ from: options.local, depth: SCAN })) {
    if (commits.has(c.oid)) break; // from here on both histories agree
    for (const op of parseCommitMessage(c.message).reverse()) {
      if (op.machine_id === options.machineId && !carried.has(op.id)) missing.push(op);
    }
  }
  return missing.reverse();
}

/** This machine's ops in a commit's history (newest `SCAN` commits), oldest first. */
export async function opsOf(repo: HubRepo, head: string, machineId: string): Promise<OpRecord[]> {
  const commits = await repo.log({ from: head, depth: SCAN });
  return commits.reverse().flatMap((c) => parseCommitMessage(c.message).filter((o) => o.machine_id === machineId));
}

/** The remote head the last fetch brought (transports keep it under `refs/drover/remote`), or null. */
export function readTrackedHead(repo: HubRepo): string | null {
  try {
    const oid = fs.readFileSync(`${repo.gitdir}/refs/drover/remote`, "utf8").trim();
    return /^[0-9a-f]{40}$/.test(oid) ? oid : null;
  } catch {
    return null;
  }
}

/** Puts ops back in the outbox ahead of the ones already waiting, keeping the order of both. */
export function requeue(db: Database, ops: OpRecord[], commit: string): void {
  const again = new Set(ops.map((o) => o.id));
  const waiting = db
    .query<{ op_id: string; name: string; op: string; commit_oid: string }, []>("SELECT op_id, name, op, commit_oid FROM outbox WHERE status = 'pending' ORDER BY seq")
    .all()
    .filter((w) => !again.has(w.op_id));
  const remove = db.query("DELETE FROM outbox WHERE op_id = ?");
  const insert = db.query("INSERT INTO outbox (op_id, name, op, commit_oid, status) VALUES (?, ?, ?, ?, 'pending')");
  // new rows, so the sequence puts the older ops first
  for (const o of ops) remove.run(o.id);
  for (const w of waiting) remove.run(w.op_id);
  for (const o of ops) insert.run(o.id, o.op, JSON.stringify(o), commit);
  for (const w of waiting) insert.run(w.op_id, w.name, w.op, w.commit_oid);
}

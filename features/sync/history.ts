/**
 * @module Where the remote branch stands against what the machines confirmed. It only ever moves forward in normal
 * use. Each push also records its machine's confirmed head (`refs/drover/confirmed/<machine>`), so a rewind (a
 * force-push to an older commit, a deleted branch) is pushed back to the newest head anyone confirmed — no machine
 * builds on the older one meanwhile — and a rewrite stops sync until a person chooses: `sync adopt` takes the
 * remote's history and sends this machine's ops that it lacks again, `sync restore` forces the confirmed history
 * back. Either way the other side's head is kept under `refs/drover/diverged/`: no confirmed op disappears without a
 * trace.
 */

import fs from "node:fs";
import { isDroverCommit, type OpRecord, parseCommitMessage } from "../../hub/apply.ts";
import type { HubRepo } from "../../hub/repo.ts";

/** How many commits of each side the op comparison of `sync adopt` looks at. */
const SCAN = 5000;
/** How far back in this machine's confirmed history a fork a rewind left behind may start. */
const FORK_DEPTH = 10;

/** Whether `remote` is `confirmed` or descends from it: the branch moved only forward since this machine saw it. */
export async function movedForward(repo: HubRepo, confirmed: string | null, remote: string | null): Promise<boolean> {
  return confirmed === null || remote === confirmed || (remote !== null && (await repo.isAncestor(confirmed, remote)));
}

/**
 * The newest head a machine confirmed (each push records its machine's under `refs/drover/confirmed/`) that the
 * branch lacks: a descendant of `head` — any, when the branch is gone — and of every other such one. null when the
 * branch holds them all, as it does unless it was rewound or deleted. `known` remembers heads found to be behind
 * the branch while it only moved forward, so a machine long offline is walked back to once, not every round.
 */
export async function newestConfirmed(
  repo: HubRepo,
  head: string | null,
  candidates: string[],
  known: { head: string | null; behind: Set<string> },
): Promise<string | null> {
  if (known.head !== head && (known.head === null || head === null || !(await repo.isAncestor(known.head, head))))
    known.behind.clear();
  known.head = head;
  const ahead: string[] = [];
  for (const c of new Set(candidates)) {
    if (c === head || known.behind.has(c)) continue;
    if (head !== null && (await repo.isAncestor(c, head))) known.behind.add(c);
    else if (head === null || (await repo.isAncestor(head, c))) ahead.push(c);
  }
  ahead.sort();
  for (const a of ahead) {
    let newest = true;
    for (const b of ahead) if (b !== a && !(await repo.isAncestor(b, a))) newest = false;
    if (newest) return a;
  }
  return ahead[0] ?? null; // machines that confirmed diverging heads: one of them goes back, the others follow it
}

/**
 * The commit where `remote` forked from `confirmed`, when it is a fork a rewind left behind rather than a rewrite:
 * the fork point is one of the last `FORK_DEPTH` commits this machine confirmed and the remote's side since then
 * is drover's own commits (ops from machines). That happens when the branch was rewound to a head it had held
 * before, between a machine's fetch and its push (its compare-and-swap saw the same head twice): that machine's
 * ops went in, this machine's confirmed ones went out, and they go back in by replay. Anything else is a rewrite a
 * person decides about. Null when it is not such a fork.
 */
export async function rewoundFork(repo: HubRepo, confirmed: string, remote: string): Promise<string | null> {
  let fork: string | null = null;
  for (const c of await repo.log({ from: confirmed, depth: FORK_DEPTH })) {
    if (await repo.isAncestor(c.oid, remote)) {
      fork = c.oid;
      break;
    }
  }
  if (!fork) return null;
  const theirs = await repo.log({ from: remote, until: fork, depth: SCAN });
  const drover = theirs.length < SCAN && theirs.every((c) => isDroverCommit(c.message));
  return drover ? fork : null;
}

/** Keeps a head that is about to leave the branch under `refs/drover/diverged/<side>-<oid>`; returns the ref. */
export function keepHead(repo: HubRepo, side: "local" | "remote", oid: string): string {
  const ref = `refs/drover/diverged/${side}-${oid.slice(0, 12)}`;
  fs.mkdirSync(`${repo.gitdir}/refs/drover/diverged`, { recursive: true });
  fs.writeFileSync(`${repo.gitdir}/${ref}`, oid + "\n");
  return ref;
}

/** This machine's ops in `local`'s history that `remote`'s history does not carry, oldest first. */
export async function opsMissingFrom(
  repo: HubRepo,
  options: { local: string; remote: string; machineId: string },
): Promise<OpRecord[]> {
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

/**
 * @module The sync round of SPEC §3. Under the hub lock: fetch the remote branch, replay this machine's
 * unconfirmed ops on the remote's tree (an op no longer valid there is rejected with its reason), commit
 * once on the remote head, push only if the remote is still that head, and then make the pushed commit the
 * local head. A lost race starts again, with jittered backoff, a bounded number of times. Nothing local
 * changes until a push has succeeded, so a crash at any point leaves the outbox to be replayed again; ops a
 * remote commit already carries (a push whose confirmation was lost) are recognised by their ids.
 */

import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { Context } from "../../core/feature.ts";
import { formatCommitMessage, type OpRecord, parseCommitMessage } from "../../hub/apply.ts";
import type { Confirmation } from "../../hub/types.ts";
import { keepHead, movedForward, newestConfirmed, opsMissingFrom, rewoundFork } from "./history.ts";
import { recover } from "./recover.ts";
import { createTransport, resolveRemoteUrl, type Transport } from "./transport.ts";

export interface SyncResult {
  /** Files that came from other machines. */
  fetched: number;
  pushed: boolean;
  confirmed: number;
  rejected: number;
  head: string | null;
}

export interface SyncService {
  /** One sync round (joined with a running one); `force` pushes this machine's presence even inside `presence_secs`. */
  round(options?: { force?: boolean }): Promise<SyncResult>;
  /**
   * Waits (bounded) until the op is pushed; throws if it was rejected. `result` is what the op did on the
   * remote's tree when this process replayed it there — it can differ from the first, local run (another
   * machine's release came first: the fence is higher).
   */
  confirm(opId: string, options: { timeoutMs: number }): Promise<Confirmation>;
  state(key: "remote_head" | "last_sync_at" | "last_error" | "last_push_at" | "diverged"): string | null;
  /**
   * After the remote's history was rewritten: `adopt` takes it (this machine's confirmed ops it lacks go out again),
   * `restore` forces this machine's confirmed history back onto it. Then a round runs.
   */
  resolve(choice: "adopt" | "restore"): Promise<SyncResult>;
  pendingCount(): number;
  /** Since this process started: rounds run, pushes made, races lost to another machine's push. */
  stats: { rounds: number; pushes: number; lost_races: number };
  /** After failed rounds, when the daemon's tick may try again (clock ms; 1 s doubling, at most the sync interval). */
  retryAt(): number;
}

const MAX_ATTEMPTS = 50;
/**
 * Fairness (SPEC §15): a machine that lost a race goes again within one attempt's time, sooner for each loss in a
 * row; a machine that keeps winning races others are in steps back before its next round, one attempt's time for
 * each such win in a row, at most this many — so the losers' retries come first. A machine alone never waits.
 */
const WINNER_CAP_ROUNDS = 8;
const HISTORY_SCAN = 2000;

export function createSync(ctx: Context): SyncService {
  const { hub } = ctx;
  let transport: { remote: string; t: Transport } | null = null;
  let running: Promise<SyncResult> | null = null;
  let queued: Promise<SyncResult> | null = null;
  let forceQueued = false;
  /** Ops someone waits on in `confirm`, with their latest replay's result once replayed. */
  const watched = new Map<string, { result?: unknown }>();
  /** Machines' confirmed heads known to be in the remote branch's history, while it only moves forward. */
  const behindRemote = { head: null as string | null, behind: new Set<string>() };

  const { state, setState } = hub;
  /** The remote head the latest attempt fetched. */
  let lastFetched: string | null = null;
  /** This machine's presence commit on the remote, as the latest fetch (or push) left it. */
  let ownPresence: string | null = null;
  /** Presence publications, one at a time. */
  let presenceQueue: Promise<void> = Promise.resolve();

  async function getTransport(): Promise<Transport> {
    const remote = ctx.config.hub.remote;
    if (transport?.remote !== remote) {
      const url = resolveRemoteUrl(ctx.paths.root, remote);
      const timeoutMs = ctx.config.hub.network_timeout_secs * 1000;
      const { branch, max_file_bytes: maxFileBytes } = ctx.config.hub;
      const options = {
        gitdir: hub.repo.gitdir,
        url,
        branch,
        token: process.env.DROVER_GIT_TOKEN,
        timeoutMs,
        maxFileBytes,
        machineId: ctx.machineId,
      };
      transport = { remote, t: createTransport(options) };
    }
    return transport.t;
  }

  const pending = () => hub.outbox.pending();

  /** Ids among `wanted` that commits from `head` back to `stop` already carry. */
  async function carried(head: string, stop: string | null, wanted: Set<string>): Promise<Set<string>> {
    const found = new Set<string>();
    for (const c of await hub.repo.log({ from: head, until: stop, depth: HISTORY_SCAN })) {
      for (const op of parseCommitMessage(c.message)) if (wanted.has(op.id)) found.add(op.id);
    }
    return found;
  }

  /** Sync stops while the remote's history is rewritten: said once per (local, remote) pair, refused every round. */
  function diverge(local: string, remote: string): never {
    const pair = JSON.stringify({ local, remote });
    if (state("diverged") !== pair) {
      setState("diverged", pair);
      ctx.log.warn(
        `The remote's "${ctx.config.hub.branch}" was rewritten: sync stops until "drover sync adopt" or "drover sync restore"`,
        { local, remote },
      );
      ctx.bus.publish("hub_diverged", { local, remote });
    }
    throw new DroverError(
      "diverged",
      `Cannot sync: the remote's "${ctx.config.hub.branch}" was rewritten (${remote.slice(0, 10)} does not descend from ${local.slice(0, 10)}, ` +
        `which this machine confirmed): run "drover sync adopt" to take the remote's history or "drover sync restore" to put this machine's back`,
    );
  }

  /** Other machines' presence commits that changed since the last round, into the working folders. */
  async function adoptPresence(presence: Map<string, string>) {
    for (const [machine, oid] of presence) {
      if (machine === hub.presence.machine) ownPresence = oid;
      else await hub.presence.adopt(machine, oid);
    }
  }

  /** This machine's presence, when it changed and `presence_secs` passed (or `force`): never contended, one push. */
  async function publishPresence(force: boolean, head: string | null) {
    const now = ctx.clock.now();
    const last = Date.parse(state("last_presence_at") ?? "") || 0;
    if (!force && now - last < ctx.config.hub.presence_secs * 1000) return;
    const oid = await hub.exclusive(() => hub.presence.build(now));
    if (oid && oid !== ownPresence && !(await (await getTransport()).pushPresence(oid, ownPresence))) return;
    ownPresence = oid;
    setState("last_presence_at", iso(now));
    // an older drover of this machine left its heartbeats on the shared branch: an op takes them off
    if (head && (await hub.presence.onBranch(head)).length && !pending().some((r) => r.op === "hub.sweep"))
      await hub.sweep();
  }

  async function attempt(): Promise<SyncResult | null> {
    const t = await getTransport();
    const base = state("remote_head");
    // the fetch waits on the network outside the hub lock, so local ops go on meanwhile
    const { head: fetched, confirmed, presence } = await t.fetch();
    lastFetched = fetched;
    return hub.exclusive(async () => {
      // another process of this machine synced while we fetched: what we hold may be older than its head
      if (state("remote_head") !== base) return null;
      // a rewound or deleted branch lacks heads machines confirmed (this one's among them): the round builds on
      // the newest of them, a fast-forward of the branch, so nothing confirmed is lost and nobody forks
      const newest = await newestConfirmed(hub.repo, fetched, base ? [base, ...confirmed] : confirmed, behindRemote);
      const remote = newest ?? fetched;
      if (!(await movedForward(hub.repo, base, remote))) {
        if (!(await rewoundFork(hub.repo, base!, remote!))) diverge(base!, fetched!);
        // this machine's confirmed ops the branch lost go back in, replayed on it, in this round
        const kept = keepHead(hub.repo, "local", base!);
        hub.outbox.requeue(
          await opsMissingFrom(hub.repo, { local: base!, remote: remote!, machineId: ctx.machineId }),
          remote!,
        );
        ctx.log.warn(
          `The remote's "${ctx.config.hub.branch}" forked from this machine's confirmed history after a rewind: its ops go in again`,
          { kept },
        );
      }
      if (state("diverged")) setState("diverged", null); // someone put the history back meanwhile
      await adoptPresence(presence);
      const records = pending();
      const done =
        remote && remote !== base && records.length
          ? await carried(remote, base, new Set(records.map((r) => r.id)))
          : new Set<string>();
      const todo = records.filter((r) => !done.has(r.id));

      let next = remote;
      const rejected: Array<{ record: OpRecord; error: DroverError }> = [];
      const kept: OpRecord[] = [];
      if (remote === null) {
        next = await hub.repo.head();
        kept.push(...records);
      } else if (todo.length) {
        const replay = await hub.replay(remote, todo);
        for (const r of replay.results) {
          if (r.error) rejected.push({ record: r.record, error: _asDroverError(r.error) });
          else if (watched.has(r.record.id)) watched.set(r.record.id, { result: r.result });
        }
        const refused = new Set(rejected.map((r) => r.record.id));
        kept.push(...todo.filter((r) => !refused.has(r.id)));
        if (replay.changes.size) {
          next = await hub.repo.commit(replay.changes, {
            parent: remote,
            message: formatCommitMessage(kept),
            time: ctx.clock.now(),
            detached: true,
          });
        }
      }
      if (next === null) return { fetched: 0, pushed: false, confirmed: 0, rejected: 0, head: null };
      const pushed = next !== fetched;
      // a machine's confirmed head we do not build on, right before the push: the branch was rewound to the head we
      // fetched after that machine pushed (our compare-and-swap would see the same head twice) — fetch again
      const seen = async (c: string) =>
        c === remote || behindRemote.behind.has(c) || (remote !== null && (await hub.repo.isAncestor(c, remote)));
      if (pushed && !(await t.push(next, fetched, { seen }))) return null;
      if (newest) {
        ctx.log.warn(`The remote's "${ctx.config.hub.branch}" had lost commits machines confirmed: pushed them back`, {
          head: next,
          was: fetched,
        });
        ctx.bus.publish("hub_restored", { head: next, remote_was: fetched });
      }

      const at = iso(ctx.clock.now());
      const changes = await hub.adopt(next, {
        inTransaction() {
          const confirmed = [...done, ...kept.map((r) => r.id)];
          const refused = rejected.map((r) => ({ opId: r.record.id, code: r.error.code, reason: r.error.message }));
          hub.outbox.decide({ confirmed, rejected: refused }, at);
          setState("remote_head", next);
          setState("last_sync_at", at);
          setState("last_error", null);
          if (pushed) setState("last_push_at", at);
        },
      });
      for (const { record, error } of rejected) {
        ctx.bus.publish("op_rejected", {
          op: record.op,
          op_id: record.id,
          item_id: (record.args.id as string | undefined) ?? null,
          reason: error.message,
          code: error.code,
        });
      }
      if (pushed || changes.length || done.size || kept.length || rejected.length) {
        ctx.bus.publish("synced", {
          head: next,
          pushed,
          fetched: changes.length,
          confirmed: done.size + kept.length,
          rejected: rejected.length,
        });
      }
      ctx.log.debug("Synced", {
        head: next,
        pushed,
        confirmed: done.size + kept.length,
        rejected: rejected.length,
        waiting: records.length - done.size - kept.length - rejected.length,
      });
      return {
        fetched: changes.length,
        pushed,
        confirmed: done.size + kept.length,
        rejected: rejected.length,
        head: next,
      };
    });
  }

  const stats = { rounds: 0, pushes: 0, lost_races: 0 };
  let failures = 0;
  let retryAt = 0;
  /** Pushes in a row that won a race other machines were in (the remote had moved since this machine's last round). */
  let contendedWins = 0;
  /** How long one attempt takes here (fetch, replay, push), smoothed: the unit of a winner's step back. */
  let attemptMs = 100;

  async function fullRound(force: boolean): Promise<SyncResult> {
    stats.rounds++;
    if (contendedWins > 0)
      await Bun.sleep(attemptMs * Math.min(WINNER_CAP_ROUNDS, contendedWins) * (0.75 + Math.random() / 2));
    try {
      for (let i = 0; i < MAX_ATTEMPTS; i++) {
        const before = state("remote_head");
        const began = performance.now();
        const result = await attempt();
        attemptMs = 0.8 * attemptMs + 0.2 * (performance.now() - began);
        if (result) {
          if (result.pushed) {
            stats.pushes++;
            contendedWins = lastFetched !== before ? contendedWins + 1 : 0;
          }
          failures = 0;
          // off the path of the ops waiting on this round, unless asked for (`sync now`)
          const publishing = (presenceQueue = presenceQueue.then(() =>
            publishPresence(force, result.head).catch((err) =>
              ctx.log.warnOnce("presence", `Cannot publish this machine's presence: ${(err as Error).message}`),
            ),
          ));
          if (force) await publishing;
          return result;
        }
        // the remote (or this machine's other process) moved first: go again soon, on the newer head
        stats.lost_races++;
        contendedWins = 0;
        // spread within one attempt's time, narrower for each loss in a row: the longest waiting goes first
        await Bun.sleep((Math.random() * attemptMs) / (1 + i));
      }
    } catch (err) {
      setState("last_error", (err as Error).message);
      retryAt = ctx.clock.now() + Math.min(ctx.config.hub.sync_interval_secs * 1000, 1000 * 2 ** failures++);
      throw err;
    }
    // contention is no fault of the remote: the next round comes soon, not after a growing pause
    const message = `Cannot sync: lost the race to other machines ${MAX_ATTEMPTS} times in a row`;
    setState("last_error", message);
    retryAt = ctx.clock.now() + 100;
    throw new DroverError("conflict", message);
  }

  async function resolve(choice: "adopt" | "restore"): Promise<SyncResult> {
    await recover(ctx, hub, { transport: await getTransport(), choice });
    setState("last_error", null);
    return service.round({ force: true });
  }

  const service: SyncService = {
    resolve,
    stats,
    round({ force = false } = {}) {
      if (!running) {
        running = fullRound(force).finally(() => (running = null));
        return running;
      }
      forceQueued ||= force;
      queued ??= running
        .catch(() => undefined)
        .then(() => {
          queued = null;
          const f = forceQueued;
          forceQueued = false;
          return service.round({ force: f });
        });
      return queued;
    },
    async confirm(opId, { timeoutMs }) {
      if (!ctx.config.hub.remote) return { confirmed: true };
      // waiting on the network: real time, not the injected clock (which tests may hold still)
      const deadline = performance.now() + timeoutMs;
      watched.set(opId, {});
      try {
        for (;;) {
          const row = hub.outbox.statusOf(opId);
          if (!row || row.status === "confirmed") return { confirmed: true, ...watched.get(opId) };
          if (row.status === "rejected")
            throw new DroverError((row.code ?? "conflict") as never, row.reason ?? "Rejected by the remote");
          if (performance.now() >= deadline) return { confirmed: false };
          try {
            await service.round();
          } catch {
            return { confirmed: false }; // offline, or no round could win: the op waits in the outbox (last_error says why)
          }
        }
      } finally {
        watched.delete(opId);
      }
    },
    state,
    retryAt: () => retryAt,
    pendingCount: () => hub.outbox.pendingCount(),
  };
  return service;
}

// --- internal ---

function _asDroverError(err: unknown): DroverError {
  return err instanceof DroverError ? err : new DroverError("conflict", `Cannot replay op: ${(err as Error).message}`);
}

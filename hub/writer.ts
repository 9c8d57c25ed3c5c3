/**
 * @module The hub service: the one serialized writer of `.drover/hub`. Ops queue in-process and are applied
 * in batches under the cross-process lock; each batch becomes one commit whose message carries the ops as
 * JSON lines. Order of effects: commit + ref, then working files, then (one SQLite transaction) the
 * listeners' indexes, the outbox and `applied_head`. A crash anywhere is repaired by `catchUp`, which
 * replays the tree diff from `applied_head` to the branch head (and re-queues the ops of a commit whose
 * outbox rows were lost). Sync uses `replay` and `adopt` to rebuild the branch on a remote head.
 */
import { iso } from "../core/clock.ts";
import { DroverError } from "../core/errors.ts";
import type { EventCause } from "../core/events.ts";
import type { Context } from "../core/feature.ts";
import { randomBase32 } from "../core/identity.ts";
import { currentCall, nextHubOpKey, parseInput } from "../core/ops.ts";
import {
  type Apply,
  type ApplyEntry,
  applyOps,
  formatCommitMessage,
  type OpRecord,
  parseCommitMessage,
} from "./apply.ts";
import { createFileLock, type FileLock } from "./lock.ts";
import type { Args } from "./op.ts";
import { createOutbox } from "./outbox.ts";
import { createPresence, PRESENCE_REPORTS } from "./presence.ts";
import { type Answer, createHubRecords } from "./records.ts";
import type { Change, FileChanges, HubRepo, InvalidEntry } from "./repo.ts";
import type { Carrier, ChangeSet, Hub, HubListener, PresenceSource } from "./types.ts";
import { readWorking, writeWorking } from "./working.ts";

export function createHub(repo: HubRepo, ctx: Context): Hub {
  const { db, clock, bus, machineId } = ctx;
  const log = ctx.log.child("hub");
  const hasRemote = () => ctx.config.hub.remote !== "";
  const lock: FileLock = createFileLock(ctx.paths.lock);
  const listeners: HubListener[] = [];
  const sources: PresenceSource[] = [];
  const mutations = new Map<string, Apply>();
  const queue: _Pending[] = [];
  let draining = false;
  let carrier: Carrier | undefined;
  const outbox = createOutbox(db);

  const records = createHubRecords(db);
  const { state, setState, answered } = records;
  const applied = () => state("applied_head");
  const presence = createPresence({
    repo,
    sources,
    machineId,
    state,
    setState,
    write: (path, content) => writeUnlessNewer(path, content),
    reportInvalid: (path, reason, what) => hub.reportInvalid(path, reason, what),
    clearInvalid: (path) => hub.clearInvalid(path),
    invalidFiles: () => hub.invalidFiles(),
  });

  /** Records a new head in one transaction: the listeners' indexes, the outbox, the answers of keyed ops. */
  function record(set: ChangeSet, extra: { inTransaction?: () => void; answers?: Answer[] } = {}) {
    db.transaction(() => {
      for (const l of listeners) l(set);
      // only ops that sync must carry wait in the outbox; with no remote, the commit is all there is
      if (set.origin === "local" && hasRemote()) outbox.add(set.ops, set.head);
      records.keepAnswers(extra.answers ?? [], clock.now());
      extra.inTransaction?.();
      setState("applied_head", set.head);
    }).immediate();
  }

  async function catchUp(): Promise<number> {
    const head = await repo.head();
    const from = applied();
    if (!head || head === from) return 0;
    const changes = await validDiff(from, head);
    // a crash (or a full disk) between a local commit and its SQLite transaction: that commit's ops still need
    // the outbox, and the answers of its keyed ops — what each did on the commit's parent — for their retries; a
    // crash inside `adopt` left a head whose changes came from the remote, and are published as such
    const [top] = await repo.log({ from: head, depth: 1 });
    const ops = top && top.parents[0] === from ? parseCommitMessage(top.message) : [];
    const ours = ops.length > 0 && ops.every((o) => o.machine_id === machineId);
    const answers = ours ? replayAnswers(ops, changes) : [];
    for (const c of changes) writeUnlessNewer(c.path, c.after);
    record({ changes, ops: ours ? ops : [], origin: ours ? "local" : "remote", head }, { answers });
    log.info("Hub caught up", { from, head, files: changes.length });
    return changes.length;
  }

  /** What the keyed ops of a commit answered, by applying them again on its parent (the `before` of its changes). */
  function replayAnswers(ops: OpRecord[], changes: Change[]): Answer[] {
    const parent = new Map(changes.map((c) => [c.path, c.before]));
    const keyed = ops
      .filter((o) => o.key && mutations.has(o.op))
      .map((record) => ({ record, apply: mutations.get(record.op)! }));
    if (!keyed.length) return [];
    const { results } = applyOps(keyed, (path) => (parent.has(path) ? parent.get(path)! : readWorking(repo.dir, path)));
    return results.filter((r) => !r.error).map((r) => ({ key: r.record.key!, opId: r.record.id, result: r.result }));
  }

  async function locked<R>(fn: () => Promise<R>): Promise<R> {
    await lock.acquire();
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  function exclusive<R>(fn: () => Promise<R>): Promise<R> {
    return locked(async () => {
      await catchUp();
      return fn();
    });
  }

  /**
   * The valid files that differ between two commits; entries the layout or the size limit leaves out are reported,
   * and earlier reports that the new tree no longer bears out (the file was fixed or removed) are forgotten.
   */
  async function validDiff(from: string | null, to: string, { forget = true } = {}): Promise<Change[]> {
    const report = (e: InvalidEntry) => hub.reportInvalid(e.path, e.reason, e.oid);
    const changes = await repo.diff(from, to, { onInvalid: report });
    if (!forget) return changes;
    const changed = new Set(changes.filter((c) => c.after !== null).map((c) => c.path));
    for (const { path } of hub.invalidFiles()) {
      if (path.startsWith(PRESENCE_REPORTS)) continue; // another machine's presence ref: its own adoption clears them
      if (changed.has(path) || (await repo.entryAt(to, path)) === null) hub.clearInvalid(path);
    }
    return changes;
  }

  /** Writes a file of a commit being applied, unless its working source keeps its own (newer) file. */
  function writeUnlessNewer(path: string, content: string | null) {
    const source = sources.find((s) => path.startsWith(s.prefix));
    if (source && content !== null) {
      const working = readWorking(repo.dir, path);
      if (working !== null && working !== content && source.keepWorking(working, content)) return;
    }
    writeFile(path, content, source !== undefined);
  }

  function writeFile(path: string, content: string | null, shared: boolean) {
    for (const aside of writeWorking(repo.dir, path, content, { shared })) {
      const reason = `it stood where the hub keeps "${path}": moved aside to "${aside}"`;
      log.warn(`Local file in the way of hub file "${path}": moved aside to "${aside}"`);
      bus.publish("hub_invalid_file", { path, reason });
    }
  }

  /** This machine's presence files an older drover left on the branch at `base`, taken off in the same changes. */
  async function leaveBranch(base: string, before: Map<string, string | null>, overlay: FileChanges) {
    for (const { path, content } of await presence.onBranch(base)) {
      if (overlay.has(path)) continue;
      before.set(path, content);
      overlay.set(path, null);
    }
  }

  async function runBatch(all: _Pending[]) {
    await exclusive(async () => {
      // a retry of a keyed op whose commit is already here (caught up just now) gets that op's answer
      const batch: _Pending[] = [];
      for (const p of all) {
        const known = p.key ? answered(p.key) : null;
        if (known) p.resolve(known.result, known.opId);
        else batch.push(p);
      }
      const at = iso(clock.now());
      const entries: ApplyEntry[] = batch.map((p) => ({
        record: {
          id: p.opId,
          op: p.name,
          args: p.args,
          machine_id: machineId,
          at,
          ...(p.cause ? { cause: p.cause } : {}),
          ...(p.key ? { key: p.key } : {}),
        },
        apply: p.apply,
      }));
      const { overlay, before, results } = applyOps(entries, (path) => readWorking(repo.dir, path));
      const parent = await repo.head();
      // only a sweep looks: a round's replay takes them off the remote's tree with any op
      if (parent && batch.some((p) => p.name === "hub.sweep")) await leaveBranch(parent, before, overlay);
      const changes: Change[] = [];
      for (const [path, after] of overlay)
        if (before.get(path) !== after) changes.push({ path, before: before.get(path)!, after });
      if (changes.length) {
        const ops = results.filter((r) => !r.error).map((r) => r.record);
        const head = await repo.commit(new Map(changes.map((c) => [c.path, c.after])), {
          parent,
          message: formatCommitMessage(ops),
          time: clock.now(),
        });
        for (const c of changes)
          if (!sources.some((s) => c.path.startsWith(s.prefix))) writeFile(c.path, c.after, false);
        const answers = results
          .filter((r) => !r.error && r.record.key)
          .map((r) => ({ key: r.record.key!, opId: r.record.id, result: r.result }));
        record({ changes, ops, origin: "local", head }, { answers });
      }
      for (const [i, r] of results.entries()) {
        if (r.error) batch[i]!.reject(r.error);
        else batch[i]!.resolve(r.result);
      }
    });
  }

  async function drain() {
    draining = true;
    while (queue.length) {
      // group commit: a round of the event loop lets concurrent requests join this batch — a commit is
      // synchronous file work, and without the yield every op would pay for one of its own
      await new Promise((resolve) => setImmediate(resolve));
      const batch = queue.splice(0, 500);
      try {
        await runBatch(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    draining = false;
  }

  function enqueue(
    name: string,
    args: Record<string, unknown>,
    apply: Apply,
  ): Promise<{ result: unknown; opId: string }> {
    const opId = `${machineId}.${randomBase32(10)}`;
    return new Promise((resolve, reject) => {
      const key = nextHubOpKey();
      queue.push({
        opId,
        name,
        args,
        apply,
        cause: currentCall()?.cause,
        key,
        resolve: (result, answeredAs) => resolve({ result, opId: answeredAs ?? opId }),
        reject,
      });
      if (!draining) void drain();
    });
  }

  const hub: Hub = {
    repo,
    outbox,
    define(mutation) {
      if (mutations.has(mutation.name))
        throw new DroverError("internal", `Cannot define hub op "${mutation.name}" twice`);
      mutations.set(mutation.name, function applyChecked(args, tx) {
        // recorded args come back from commits (a replay, a catch-up): input like any other; the checked copy's
        // choices go back into the record
        const checked = parseInput(mutation.args, args) as Args;
        const result = mutation.apply(checked, tx, ctx);
        Object.assign(args, checked);
        return result;
      });
    },
    async run(mutation, args) {
      return (await hub.runTracked<never>(mutation.name, args)).result;
    },
    runTracked<R>(name: string, args: Args) {
      const apply = mutations.get(name);
      if (!apply) return Promise.reject(new DroverError("internal", `Cannot run hub op "${name}": it is not defined`));
      return enqueue(name, args, apply) as Promise<{ result: R; opId: string }>;
    },
    hasRemote,
    setCarrier: (c) => void (carrier = c),
    confirm: (opId, options) =>
      carrier && hasRemote() ? carrier.confirm(opId, options) : Promise.resolve({ confirmed: true }),
    onChange: (listener) => void listeners.push(listener),
    trackPresenceSource: (source) => void sources.push(source),
    presence,
    writeWorkingFile: (path, content) => writeFile(path, content, true),
    sweep: () => enqueue("hub.sweep", {}, () => undefined).then(() => undefined),
    catchUp: () => locked(catchUp),
    state,
    setState,
    async replay(base, records) {
      const local = await repo.head();
      const remoteFiles = new Map((await validDiff(local, base, { forget: false })).map((c) => [c.path, c.after]));
      const read = (path: string) => (remoteFiles.has(path) ? remoteFiles.get(path)! : readWorking(repo.dir, path));
      // ops with no replay (sweeps) carry nothing themselves: this machine's presence files leave the branch below
      const entries = records
        .filter((r) => mutations.has(r.op))
        .map((record) => ({ record, apply: mutations.get(record.op)! }));
      const { overlay, before, results } = applyOps(entries, read);
      await leaveBranch(base, before, overlay);
      for (const [path, after] of overlay) if (before.get(path) === after) overlay.delete(path);
      return { changes: overlay, results };
    },
    async adopt(head, { inTransaction } = {}) {
      const from = await repo.head();
      const changes = head === from ? [] : await validDiff(from, head);
      if (head !== from) await repo.setHead(head);
      for (const c of changes) writeUnlessNewer(c.path, c.after);
      record({ changes, ops: [], origin: "remote", head }, { inTransaction });
      return changes;
    },
    reportInvalid(path, reason, what) {
      if (!records.markInvalid({ path, reason, seen_at: iso(clock.now()) }, Bun.hash(what).toString(36))) return;
      log.warn(`Skipping hub file "${path}": ${reason}`);
      bus.publish("hub_invalid_file", { path, reason });
    },
    clearInvalid: records.clearInvalid,
    invalidFiles: records.invalidFiles,
    exclusive,
    close: () => lock.close(),
  };
  return hub;
}

// --- internal ---

interface _Pending {
  opId: string;
  name: string;
  args: Record<string, unknown>;
  apply: Apply;
  cause?: EventCause;
  key?: string;
  /** `opId`: a retry answered from the commit of the first try names that try's op. */
  resolve: (value: unknown, opId?: string) => void;
  reject: (err: unknown) => void;
}

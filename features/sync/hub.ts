/**
 * @module The hub service: the one serialized writer of `.drover/hub`. Mutations queue in-process and are
 * applied in batches under the cross-process lock; each batch becomes one commit whose message carries the
 * ops as JSON lines. Order of effects: commit + ref, then working files, then (one SQLite transaction) the
 * listeners' indexes, the outbox and `applied_head`. A crash anywhere is repaired by `catchUp`, which
 * replays the tree diff from `applied_head` to the branch head.
 */
import type { Database } from "bun:sqlite";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { iso, type Clock } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { writeFileAtomic } from "../../core/files.ts";
import { canonicalJson } from "../../core/json.ts";
import type { Bus } from "../../core/bus.ts";
import type { EventCause } from "../../core/events.ts";
import { currentCall } from "../../core/ops.ts";
import type { Logger } from "../../core/logger.ts";
import { createFileLock, type FileLock } from "./lock.ts";
import type { Change, FileChanges, HubRepo } from "./repo.ts";

/** One op as the audit log and the outbox keep it. */
export interface OpRecord {
  op: string;
  args: Record<string, unknown>;
  machine_id: string;
  at: string;
  /** Set when a timer or trigger action made the op: its events carry it, so trigger chains stay bounded. */
  cause?: EventCause;
}

/** What a mutation sees: hub files as parsed JSON, with this batch's earlier writes applied. */
export interface HubTx {
  read(path: string): unknown;
  write(path: string, value: unknown): void;
  remove(path: string): void;
  now: number;
}

export interface Mutation<R> {
  op: Omit<OpRecord, "machine_id" | "at" | "cause">;
  apply(tx: HubTx): R;
}

export interface ChangeSet {
  changes: Change[];
  ops: OpRecord[];
  origin: "local" | "remote";
  head: string;
}

/** Called inside the SQLite transaction that records a new head; must not throw for bad file content. */
export type HubListener = (set: ChangeSet) => void;

/**
 * A folder whose working files are their own source (heartbeats: written in place so events never wait for a
 * commit). Valid changed files are swept into the next commit; a commit never overwrites a newer one.
 */
export interface WorkingSource {
  prefix: string;
  /** Whether a working file may be committed (invalid ones stay local and are reported by their feature). */
  accept(path: string, content: string): boolean;
  /** Whether the working file should be kept instead of the committed content (it is newer). */
  keepWorking(working: string, committed: string): boolean;
}

export interface Hub {
  repo: HubRepo;
  submit<R>(mutation: Mutation<R>): Promise<R>;
  trackWorkingSource(source: WorkingSource): void;
  /** Writes a working file atomically (temp + rename), outside any commit. */
  writeWorkingFile(path: string, content: string | null): void;
  /** Commits the working sources' pending changes, if any, as one commit. */
  sweep(): Promise<void>;
  onChange(listener: HubListener): void;
  /** Brings working files and indexes up to the branch head (crash repair); returns files applied. */
  catchUp(): Promise<number>;
  appliedHead(): string | null;
  /** Records a hub file that cannot be used; publishes `hub_invalid_file` once per distinct content. */
  reportInvalid(path: string, reason: string, content: string): void;
  /** Forgets an invalid file once it was fixed or removed. */
  clearInvalid(path: string): void;
  invalidFiles(): Array<{ path: string; reason: string; seen_at: string }>;
  /** Runs `fn` holding the hub lock, after catching up. */
  exclusive<R>(fn: () => Promise<R>): Promise<R>;
  close(): void;
}

export interface HubOptions {
  db: Database;
  bus: Bus;
  clock: Clock;
  log: Logger;
  machineId: string;
  lockFile: string;
  /** True when sync will carry ops to a remote (they wait in the outbox until confirmed). */
  hasRemote: () => boolean;
}

export function createHub(repo: HubRepo, options: HubOptions): Hub {
  const { db, clock } = options;
  const lock: FileLock = createFileLock(options.lockFile);
  const listeners: HubListener[] = [];
  const sources: WorkingSource[] = [];
  const queue: Array<_Pending> = [];
  let draining = false;

  function applied(): string | null {
    return db.query<{ value: string }, []>("SELECT value FROM hub_state WHERE key = 'applied_head'").get()?.value ?? null;
  }

  function record(set: ChangeSet) {
    db.transaction(() => {
      for (const l of listeners) l(set);
      // only ops that sync must carry wait in the outbox; with no remote, the commit is all there is
      if (set.origin === "local" && options.hasRemote()) {
        const insert = db.query("INSERT INTO outbox (op, commit_oid, status) VALUES (?, ?, 'pending')");
        for (const op of set.ops) insert.run(JSON.stringify(op), set.head);
      }
      db.query("INSERT INTO hub_state (key, value) VALUES ('applied_head', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(set.head);
    }).immediate();
  }

  async function catchUp(): Promise<number> {
    const head = await repo.head();
    const from = applied();
    if (!head || head === from) return 0;
    const changes = await repo.diff(from, head);
    for (const c of changes) writeUnlessNewer(c.path, c.after);
    record({ changes, ops: [], origin: "local", head });
    options.log.info("Hub caught up", { from, head, files: changes.length });
    return changes.length;
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

  function writeUnlessNewer(path: string, content: string | null) {
    const source = sources.find((s) => path.startsWith(s.prefix));
    if (source && content !== null) {
      const working = _readWorking(repo.dir, path);
      if (working !== null && working !== content && source.keepWorking(working, content)) return;
    }
    _writeWorking(repo.dir, path, content);
  }

  /** Working-source files that differ from the head: added or changed (accepted ones), or removed. */
  async function sweepChanges(head: string | null, before: Map<string, string | null>, overlay: FileChanges) {
    for (const source of sources) {
      const committed = new Map(head ? (await repo.files(head, source.prefix)).map((f) => [f.path, f.oid]) : []);
      for (const name of _list(join(repo.dir, source.prefix))) {
        const path = source.prefix + name;
        const content = _readWorking(repo.dir, path);
        const oid = committed.get(path);
        committed.delete(path);
        if (content === null || overlay.has(path) || (oid && _blobOid(content) === oid)) continue;
        if (!source.accept(path, content)) continue;
        before.set(path, oid ? await repo.readBlob(oid) : null);
        overlay.set(path, content);
      }
      for (const path of committed.keys()) {
        if (overlay.has(path)) continue;
        before.set(path, await repo.readBlob(committed.get(path)!));
        overlay.set(path, null);
      }
    }
  }

  async function runBatch(batch: _Pending[]) {
    await exclusive(async () => {
      const overlay: FileChanges = new Map();
      const before = new Map<string, string | null>();
      const done: Array<{ p: _Pending; result: unknown; op: OpRecord }> = [];
      const now = clock.now();
      for (const p of batch) {
        const own: FileChanges = new Map();
        const tx = _tx(repo.dir, overlay, own, before, now);
        try {
          const result = p.mutation.apply(tx);
          for (const [k, v] of own) overlay.set(k, v);
          const op: OpRecord = { ...p.mutation.op, machine_id: options.machineId, at: iso(now) };
          if (p.cause) op.cause = p.cause;
          done.push({ p, result, op });
        } catch (err) {
          p.reject(err);
        }
      }
      const parent = await repo.head();
      await sweepChanges(parent, before, overlay);
      const changes: Change[] = [];
      for (const [path, after] of overlay) if (before.get(path) !== after) changes.push({ path, before: before.get(path)!, after });
      if (changes.length) {
        const ops = done.map((d) => d.op);
        const head = await repo.commit(new Map(changes.map((c) => [c.path, c.after])), {
          parent,
          message: formatCommitMessage(ops),
          time: now,
        });
        for (const c of changes) if (!sources.some((s) => c.path.startsWith(s.prefix))) _writeWorking(repo.dir, c.path, c.after);
        record({ changes, ops, origin: "local", head });
      }
      for (const d of done) d.p.resolve(d.result);
    });
  }

  async function drain() {
    draining = true;
    while (queue.length) {
      const batch = queue.splice(0, 500);
      try {
        await runBatch(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    draining = false;
  }

  return {
    repo,
    submit<R>(mutation: Mutation<R>) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ mutation, cause: currentCall()?.cause, resolve: resolve as (v: unknown) => void, reject });
        if (!draining) void drain();
      });
    },
    onChange: (listener) => void listeners.push(listener),
    trackWorkingSource: (source) => void sources.push(source),
    writeWorkingFile: (path, content) => _writeWorking(repo.dir, path, content),
    sweep() {
      return new Promise<void>((resolve, reject) => {
        queue.push({ mutation: { op: { op: "hub.sweep", args: {} }, apply: () => undefined }, resolve: () => resolve(), reject });
        if (!draining) void drain();
      });
    },
    catchUp: () => locked(catchUp),
    appliedHead: applied,
    reportInvalid(path, reason, content) {
      const digest = Bun.hash(content).toString(36);
      const known = db.query<{ digest: string }, [string]>("SELECT digest FROM hub_invalid WHERE path = ?").get(path);
      if (known?.digest === digest) return;
      db.query("INSERT OR REPLACE INTO hub_invalid (path, reason, digest, seen_at) VALUES (?, ?, ?, ?)").run(path, reason, digest, iso(clock.now()));
      options.log.warn(`Skipping hub file "${path}": ${reason}`);
      options.bus.publish("hub_invalid_file", { path, reason });
    },
    clearInvalid(path) {
      db.query("DELETE FROM hub_invalid WHERE path = ?").run(path);
    },
    invalidFiles() {
      return db.query<{ path: string; reason: string; seen_at: string }, []>("SELECT path, reason, seen_at FROM hub_invalid ORDER BY path").all();
    },
    exclusive,
    close: () => lock.close(),
  };
}

/** The commit message: a summary line, a blank line, then one JSON line per op (the audit log). */
export function formatCommitMessage(ops: OpRecord[]): string {
  const names = [...new Set(ops.map((o) => o.op))].join(", ");
  return `drover: ${ops.length} op${ops.length === 1 ? "" : "s"} (${names})\n\n${ops.map((o) => JSON.stringify(o)).join("\n")}\n`;
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

interface _Pending {
  mutation: Mutation<unknown>;
  cause?: EventCause;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

function _tx(dir: string, overlay: FileChanges, own: FileChanges, before: Map<string, string | null>, now: number): HubTx {
  function text(path: string): string | null {
    if (own.has(path)) return own.get(path)!;
    if (overlay.has(path)) return overlay.get(path)!;
    if (!before.has(path)) before.set(path, _readWorking(dir, path));
    return before.get(path)!;
  }
  function set(path: string, content: string | null) {
    text(path); // remember what it was before this batch
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

function _list(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => !f.endsWith(".tmp"));
  } catch {
    return [];
  }
}

/** The git blob id of some text, to compare a working file with a tree entry without reading the blob. */
function _blobOid(content: string): string {
  const body = Buffer.from(content);
  return new Bun.CryptoHasher("sha1").update(`blob ${body.length}\0`).update(body).digest("hex");
}

function _readWorking(dir: string, path: string): string | null {
  try {
    return readFileSync(join(dir, path), "utf8");
  } catch {
    return null;
  }
}

function _writeWorking(dir: string, path: string, content: string | null) {
  writeFileAtomic(join(dir, path), content);
}

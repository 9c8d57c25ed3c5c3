/**
 * @module What the hub layer offers the features (`ctx.hub`) and sync: the writer's interface, change sets and
 * their listeners, presence sources, and the carrier that takes ops to a remote.
 */
import type { Applied, OpRecord } from "./apply.ts";
import type { Args, Mutation } from "./op.ts";
import type { Outbox } from "./outbox.ts";
import type { Presence } from "./presence.ts";
import type { InvalidFile } from "./records.ts";
import type { Change, FileChanges, HubRepo } from "./repo.ts";

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
 * commit). They travel on each machine's presence ref (`drover/presence/<machine>`), never on the shared branch;
 * a file from elsewhere never overwrites a newer one.
 */
export interface PresenceSource {
  prefix: string;
  /**
   * Whether a file belongs on `machine`'s presence ref: valid, and that machine's own (invalid ones stay local and
   * are reported by their feature; one on another machine's ref is refused).
   */
  belongs(path: string, content: string, machine: string): boolean;
  /** Whether the working file should be kept instead of the incoming content (it is newer). */
  keepWorking(working: string, incoming: string): boolean;
}

/** Whether an op reached the remote; `result` is what it did there when its replay's differed from the first run's. */
export type Confirmation = { confirmed: false } | { confirmed: true; result?: unknown };

/** What carries ops to a remote (sync): the hub asks it whether an op got there. */
export interface Carrier {
  confirm(opId: string, options: { timeoutMs: number }): Promise<Confirmation>;
}

export interface Hub {
  repo: HubRepo;
  /** This machine's ops waiting for the carrier, and its decisions. */
  outbox: Outbox;
  /** Registers a mutation: `run` applies it now, sync replays it on another machine's tree. */
  // biome-ignore lint/suspicious/noExplicitAny: each mutation has its own args; `apply` takes its own args type
  define(mutation: Mutation<any, unknown>): void;
  run<A extends Args, R>(mutation: Mutation<A, R>, args: A): Promise<R>;
  /** Runs a registered mutation by name, and says which op id it was recorded under (to wait for its confirmation). */
  runTracked<R>(name: string, args: Args): Promise<{ result: R; opId: string }>;
  /** True when ops wait in the outbox for a carrier to take them to a remote (`hub.remote` is set). */
  hasRemote(): boolean;
  setCarrier(carrier: Carrier): void;
  /** Waits (bounded) until the op reached the remote; throws its refusal if it was rejected there. */
  confirm(opId: string, options: { timeoutMs: number }): Promise<Confirmation>;
  trackPresenceSource(source: PresenceSource): void;
  /** This machine's presence ref and the ones fetched from other machines. */
  presence: Presence;
  /** Writes a working file atomically (temp + rename), outside any commit. */
  writeWorkingFile(path: string, content: string | null): void;
  /** An op that takes this machine's presence files off the shared branch, where older drovers put them. */
  sweep(): Promise<void>;
  onChange(listener: HubListener): void;
  /** Brings working files and indexes up to the branch head (crash repair); returns files applied. */
  catchUp(): Promise<number>;
  /** This machine's hub bookkeeping (`hub_state`): applied and remote heads, sync times, the last error. */
  state(key: string): string | null;
  setState(key: string, value: string | null): void;
  /** Inside `exclusive`: the records replayed on `base`, this machine's presence files off it; writes nothing. */
  replay(base: string, records: OpRecord[]): Promise<{ changes: FileChanges; results: Applied["results"] }>;
  /** Inside `exclusive`: makes `head` the branch head and brings files and indexes to it (`origin: remote`). */
  adopt(head: string, options?: { inTransaction?: () => void }): Promise<Change[]>;
  /** Records a hub file that cannot be used; publishes `hub_invalid_file` once per distinct `what` (its content or oid). */
  reportInvalid(path: string, reason: string, what: string): void;
  /** Forgets an invalid file once it was fixed or removed. */
  clearInvalid(path: string): void;
  invalidFiles(): InvalidFile[];
  /** Runs `fn` holding the hub lock, after catching up. */
  exclusive<R>(fn: () => Promise<R>): Promise<R>;
  close(): void;
}

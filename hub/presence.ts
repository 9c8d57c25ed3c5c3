/**
 * @module Presence: the files each machine keeps about itself (heartbeats) travel on its own ref,
 * `drover/presence/<machine>`, which only that machine writes — never contended, never a race with the ops on the
 * shared branch. This machine's ref holds one parentless commit of its current files (a new one replaces it, so the
 * remote keeps no history of heartbeats); another machine's commit is brought into the working folders, refusing
 * files that name someone else and never overwriting a newer file. Older drovers put heartbeats on the shared
 * branch: those are still read there, and this machine's own are taken off it.
 */
import { join } from "node:path";
import type { HubRepo } from "./repo.ts";
import type { PresenceSource } from "./types.ts";
import { blobOid, listWorking, readWorking } from "./working.ts";

/** The remote branches presence travels on: `drover/presence/<machine>`. */
export const PRESENCE_BRANCHES = "refs/heads/drover/presence/";
/** How files refused on a presence ref are named in the hub's invalid files: `drover/presence/<machine>:<path>`. */
export const PRESENCE_REPORTS = PRESENCE_BRANCHES.slice("refs/heads/".length);
/** Where a fetch puts every machine's presence commit, this one's included. */
export const PRESENCE_TRACKING = "refs/drover/presence/";
/** This machine's latest presence commit, pushed or not. */
const OWN = "refs/drover/own-presence";

export interface Presence {
  /** The name of this machine on presence refs. */
  machine: string;
  /** This machine's presence commit for its working files now; a new one only when they changed; null when none. */
  build(time: number): Promise<string | null>;
  /** Inside `exclusive`: brings `machine`'s presence commit into the working folders; returns the files written. */
  adopt(machine: string, oid: string): Promise<number>;
  /** This machine's files on the shared branch at `head` (put there by an older drover), to be taken off. */
  onBranch(head: string): Promise<Array<{ path: string; content: string }>>;
}

export interface PresenceOptions {
  repo: HubRepo;
  sources: readonly PresenceSource[];
  machineId: string;
  state(key: string): string | null;
  setState(key: string, value: string | null): void;
  /** Writes a file unless its working copy is newer (`null` deletes). */
  write(path: string, content: string | null): void;
  reportInvalid(path: string, reason: string, what: string): void;
  clearInvalid(path: string): void;
  invalidFiles(): Array<{ path: string }>;
}

/** A machine id as a ref name: what git allows in one segment. */
export function presenceName(machineId: string): string {
  return machineId.replace(/[^A-Za-z0-9_-]/g, "_");
}

export function createPresence(options: PresenceOptions): Presence {
  const { repo, sources, state, setState } = options;
  const machine = presenceName(options.machineId);
  /** Blobs on the shared branch already looked at: whether each is this machine's (heartbeats rarely change there). */
  const ownBlob = new Map<string, boolean>();

  function sourceOf(path: string): PresenceSource | undefined {
    return sources.find((s) => path.startsWith(s.prefix));
  }

  return {
    machine,
    async build(time) {
      const files = new Map<string, string>();
      for (const source of sources) {
        for (const name of listWorking(join(repo.dir, source.prefix))) {
          const path = source.prefix + name;
          const content = readWorking(repo.dir, path);
          if (content !== null && source.belongs(path, content, machine)) files.set(path, content);
        }
      }
      const current = await repo.readRef(OWN);
      if (current && _sameFiles(await repo.files(current), files)) return current;
      if (!current && !files.size) return null;
      const oid = await repo.commit(files, { parent: null, message: `presence of ${machine}\n`, time, detached: true });
      await repo.writeRef(OWN, oid);
      return oid;
    },
    async adopt(from, oid) {
      const key = `presence:${from}`;
      const before = state(key);
      if (before === oid) return 0;
      const where = (path: string) => `${PRESENCE_REPORTS}${from}:${path}`;
      const listed = new Set<string>();
      const report = (path: string, reason: string, what: string) => {
        listed.add(where(path));
        options.reportInvalid(where(path), reason, what);
      };
      // a presence tree is a few files, so each new commit is read whole: what it no longer holds is no longer listed
      const now = await repo.diff(null, oid, { onInvalid: (e) => report(e.path, e.reason, e.oid) });
      // the commit adopted before may be gone (a repository rebuilt): then every file counts as new
      const had = new Map((before ? await repo.diff(null, before).catch(() => []) : []).map((c) => [c.path, c.after]));
      let written = 0;
      for (const { path, after } of now) {
        const was = had.get(path);
        had.delete(path);
        const source = sourceOf(path);
        if (!source) report(path, "it is not a presence file", after!);
        else if (!source.belongs(path, after!, from)) report(path, `it is not machine "${from}"'s own file`, after!);
        else if (after !== was) {
          options.write(path, after);
          written++;
        }
      }
      // gone from that machine's ref: removed here unless it came from elsewhere since
      for (const [path, content] of had)
        if (sourceOf(path) && readWorking(repo.dir, path) === content) options.write(path, null);
      for (const { path } of options.invalidFiles())
        if (path.startsWith(where("")) && !listed.has(path)) options.clearInvalid(path);
      setState(key, oid);
      return written;
    },
    async onBranch(head) {
      const out: Array<{ path: string; content: string }> = [];
      if (ownBlob.size > 10_000) ownBlob.clear();
      for (const source of sources) {
        for (const file of await repo.files(head, source.prefix)) {
          if (ownBlob.get(file.oid) === false) continue;
          const content = await repo.readBlob(file.oid);
          const own = content !== null && source.belongs(file.path, content, machine);
          ownBlob.set(file.oid, own);
          if (own) out.push({ path: file.path, content: content! });
        }
      }
      return out;
    },
  };
}

// --- internal ---

function _sameFiles(committed: Array<{ path: string; oid: string }>, files: Map<string, string>): boolean {
  if (committed.length !== files.size) return false;
  return committed.every(({ path, oid }) => files.has(path) && blobOid(files.get(path)!) === oid);
}

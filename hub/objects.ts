/**
 * @module Writing git objects directly. A commit's new objects are collected in memory and written as one
 * packfile with its index (temp files renamed into place, the index last), so a batch costs a handful of
 * file operations instead of two per object; when packs pile up, `git repack` folds them together. Parsed
 * trees are cached by oid (trees never change).
 */
import fs from "node:fs";
import { deflateSync } from "node:zlib";
import type { TreeEntry } from "isomorphic-git";
import { DroverError } from "../core/errors.ts";
import { gitAsync } from "../core/git.ts";
import { createObjectReader, type RawObject } from "./packs.ts";

export interface CommitObject {
  tree: string;
  parents: string[];
  /** Committer time, seconds. */
  timestamp: number;
  message: string;
}

export interface ObjectStore {
  writeBlob(content: string): string;
  writeTree(entries: TreeEntry[]): string;
  writeCommit(commit: { tree: string; parents: string[]; message: string; time: number }): string;
  readTree(oid: string): TreeEntry[];
  /** A blob's text; throws `too_large` (from the object's header, before inflating) past `maxBytes`. */
  readBlob(oid: string, maxBytes: number): string;
  readCommit(oid: string): CommitObject;
  /** The tree oid of a commit. */
  commitTree(oid: string): string;
  /** Writes every object created since the last flush as one pack; returns the number written. */
  flush(): Promise<number>;
}

export interface ObjectStoreOptions {
  cacheSize?: number;
  /** Repack when this many packs have accumulated (default 32). */
  repackAfter?: number;
  onRepackError?: (err: Error) => void;
}

const SIGNATURE = "drover <drover@localhost>";
/** Trees and commits from a remote are read up to this size (a commit message lists every op of its round). */
const MAX_STRUCTURE_BYTES = 64 * 1024 * 1024;
const TYPE_CODE = { commit: 1, tree: 2, blob: 3 } as const;
const encoder = new TextEncoder();

export function createObjectStore(gitdir: string, options: ObjectStoreOptions = {}): ObjectStore {
  const trees = new Map<string, TreeEntry[]>();
  const limit = options.cacheSize ?? 50_000;
  const pending = new Map<string, { type: keyof typeof TYPE_CODE; body: Uint8Array }>();
  const reader = createObjectReader(gitdir);
  const decoder = new TextDecoder();
  const packDir = `${gitdir}/objects/pack`;

  function remember(oid: string, entries: TreeEntry[]) {
    if (trees.size >= limit) trees.delete(trees.keys().next().value!);
    trees.set(oid, entries);
  }

  function read(oid: string, type: RawObject["type"], maxBytes: number): Buffer {
    const raw = pending.get(oid) ?? reader.read(oid, maxBytes);
    if (!raw) throw new DroverError("not_found", `Cannot read ${type} "${oid}": the hub repository does not hold it`);
    if (raw.type !== type) throw new DroverError("conflict", `Cannot read ${type} "${oid}": it is a ${raw.type}`);
    return Buffer.from(raw.body.buffer, raw.body.byteOffset, raw.body.byteLength);
  }

  function add(type: keyof typeof TYPE_CODE, body: Uint8Array): string {
    const oid = new Bun.CryptoHasher("sha1").update(`${type} ${body.length}\0`).update(body).digest("hex");
    pending.set(oid, { type, body });
    return oid;
  }

  /**
   * Folds our packs into one when enough have piled up; runs inside the hub lock, so nothing writes meanwhile.
   * Asynchronous: the daemon goes on taking requests (they queue for the lock and join the next batch).
   */
  async function repackIfMany() {
    if (fs.readdirSync(packDir).length < 2 * (options.repackAfter ?? 32)) return;
    // geometric: rolls the small packs together and leaves the big one alone (tens of ms at 10,000 items);
    // it keeps every object of the packs it folds, and --window=0 keeps them readable by the fast reader
    const { code, stderr } = await gitAsync(gitdir, ["repack", "--geometric=2", "-d", "-q", "--window=0"]);
    if (code !== 0) options.onRepackError?.(new Error(`git repack exited with ${code}: ${stderr.trim()}`));
  }

  return {
    writeBlob: (content) => add("blob", encoder.encode(content)),
    writeTree(entries) {
      const sorted = [...entries].sort((a, b) => (_treeKey(a) < _treeKey(b) ? -1 : _treeKey(a) > _treeKey(b) ? 1 : 0));
      const parts: Uint8Array[] = [];
      for (const e of sorted)
        parts.push(encoder.encode(`${e.type === "tree" ? "40000" : e.mode} ${e.path}\0`), Buffer.from(e.oid, "hex"));
      const oid = add("tree", Buffer.concat(parts));
      remember(oid, sorted);
      return oid;
    },
    writeCommit({ tree, parents, message, time }) {
      const stamp = `${Math.floor(time / 1000)} +0000`;
      const lines = [
        `tree ${tree}`,
        ...parents.map((p) => `parent ${p}`),
        `author ${SIGNATURE} ${stamp}`,
        `committer ${SIGNATURE} ${stamp}`,
      ];
      return add("commit", encoder.encode(lines.join("\n") + "\n\n" + message));
    },
    readTree(oid) {
      const cached = trees.get(oid);
      if (cached) return cached;
      const tree = _parseTree(read(oid, "tree", MAX_STRUCTURE_BYTES));
      remember(oid, tree);
      return tree;
    },
    readBlob: (oid, maxBytes) => decoder.decode(read(oid, "blob", maxBytes)),
    readCommit: (oid) => _parseCommit(read(oid, "commit", MAX_STRUCTURE_BYTES).toString("utf8")),
    commitTree: (oid) => read(oid, "commit", MAX_STRUCTURE_BYTES).toString("latin1", 5, 45),
    async flush() {
      const n = pending.size;
      if (!n) return 0;
      _writePack(packDir, [...pending]);
      pending.clear();
      await repackIfMany();
      return n;
    },
  };
}

// --- internal ---

/** Git orders tree entries by name bytes, a subtree's name as if it ended in "/". */
function _treeKey(e: TreeEntry): string {
  return e.type === "tree" ? e.path + "/" : e.path;
}

function _parseCommit(text: string): CommitObject {
  const end = text.indexOf("\n\n");
  const headers = (end < 0 ? text : text.slice(0, end)).split("\n");
  const value = (name: string) => headers.filter((h) => h.startsWith(name + " ")).map((h) => h.slice(name.length + 1));
  const committer = value("committer")[0] ?? "";
  return {
    tree: value("tree")[0] ?? "",
    parents: value("parent"),
    timestamp: Number(/ (\d+) [+-]\d{4}$/.exec(committer)?.[1] ?? 0),
    message: end < 0 ? "" : text.slice(end + 2),
  };
}

function _parseTree(body: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (let p = 0; p < body.length; ) {
    const space = body.indexOf(32, p);
    const nul = body.indexOf(0, space);
    const mode = body.toString("latin1", p, space);
    const path = body.toString("utf8", space + 1, nul);
    const oid = body.toString("hex", nul + 1, nul + 21);
    const isTree = mode === "40000";
    out.push({
      mode: isTree ? "040000" : mode,
      path,
      oid,
      type: isTree ? "tree" : mode === "160000" ? "commit" : "blob",
    });
    p = nul + 21;
  }
  return out;
}

/** Writes a version-2 pack of undeltified objects and its version-2 index. */
function _writePack(dir: string, objects: Array<[string, { type: keyof typeof TYPE_CODE; body: Uint8Array }]>) {
  const chunks: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.write("PACK", 0);
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(objects.length, 8);
  chunks.push(header);
  let offset = 12;
  const entries: Array<{ oid: string; offset: number; crc: number }> = [];
  for (const [oid, { type, body }] of objects) {
    const entry = Buffer.concat([_objectHeader(TYPE_CODE[type], body.length), deflateSync(body, { level: 1 })]);
    entries.push({ oid, offset, crc: Bun.hash.crc32(entry) });
    chunks.push(entry);
    offset += entry.length;
  }
  const packBody = Buffer.concat(chunks);
  const packSha = new Bun.CryptoHasher("sha1").update(packBody).digest();
  const pack = Buffer.concat([packBody, packSha]);

  entries.sort((a, b) => (a.oid < b.oid ? -1 : 1));
  const fanout = Buffer.alloc(256 * 4);
  for (let byte = 0, i = 0; byte < 256; byte++) {
    while (i < entries.length && parseInt(entries[i]!.oid.slice(0, 2), 16) <= byte) i++;
    fanout.writeUInt32BE(i, byte * 4);
  }
  const crcs = Buffer.alloc(entries.length * 4);
  const offsets = Buffer.alloc(entries.length * 4);
  entries.forEach((e, i) => {
    crcs.writeUInt32BE(e.crc >>> 0, i * 4);
    offsets.writeUInt32BE(e.offset, i * 4);
  });
  const idxBody = Buffer.concat([
    Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]),
    fanout,
    ...entries.map((e) => Buffer.from(e.oid, "hex")),
    crcs,
    offsets,
    packSha,
  ]);
  const idx = Buffer.concat([idxBody, new Bun.CryptoHasher("sha1").update(idxBody).digest()]);

  const name = `${dir}/pack-${packSha.toString("hex")}`;
  try {
    fs.writeFileSync(`${name}.pack`, pack);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(`${name}.pack`, pack);
  }
  // readers find a pack through its index, so only the index needs to appear atomically
  fs.writeFileSync(`${name}.idx.tmp`, idx);
  fs.renameSync(`${name}.idx.tmp`, `${name}.idx`);
}

/** The variable-length type-and-size header of a packed object. */
function _objectHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let byte = (type << 4) | (size & 0x0f);
  size = Math.floor(size / 16);
  while (size > 0) {
    bytes.push(byte | 0x80);
    byte = size & 0x7f;
    size = Math.floor(size / 128);
  }
  bytes.push(byte);
  return Buffer.from(bytes);
}

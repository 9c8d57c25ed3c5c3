/**
 * @module Reading git objects by oid without loading whole packfiles: loose objects, or a binary search in a
 * pack's index and a read of just that object's bytes. A short-lived CLI process reads the two or three
 * trees it needs in well under a millisecond. Deltified objects (after a user's `git gc`) return null and the
 * caller falls back to isomorphic-git.
 */
import fs from "node:fs";
import { inflateSync } from "node:zlib";

export interface RawObject {
  type: "commit" | "tree" | "blob" | "tag";
  body: Buffer;
}

export interface ObjectReader {
  read(oid: string): RawObject | null;
}

const TYPES = [undefined, "commit", "tree", "blob", "tag"] as const;

export function createObjectReader(gitdir: string): ObjectReader {
  const packs = new Map<string, _Pack>();
  let listedAt = 0;

  function list() {
    const dir = `${gitdir}/objects/pack`;
    let found: Array<{ name: string; mtime: number }> = [];
    try {
      found = fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".idx"))
        .map((name) => ({ name, mtime: fs.statSync(`${dir}/${name}`).mtimeMs }));
    } catch {
      // no packs yet, or one vanished in a repack: the next look finds the rest
    }
    // newest first: what a commit needs (the head's trees) was almost always written last
    found.sort((a, b) => b.mtime - a.mtime);
    const previous = new Map(packs);
    packs.clear();
    for (const { name } of found) packs.set(name, previous.get(name) ?? { name, path: `${dir}/${name}`, idx: null });
    listedAt = Date.now();
  }

  function fromPacks(oid: string): RawObject | null | undefined {
    for (const pack of packs.values()) {
      const found = _lookup(pack, oid);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  return {
    read(oid) {
      const loose = `${gitdir}/objects/${oid.slice(0, 2)}/${oid.slice(2)}`;
      if (fs.existsSync(loose)) return _parseLoose(inflateSync(fs.readFileSync(loose)));
      if (!listedAt) list();
      const hit = fromPacks(oid);
      if (hit !== undefined) return hit;
      list(); // a pack written or repacked by another process since we looked
      return fromPacks(oid) ?? null;
    },
  };
}

// --- internal ---

interface _Pack {
  name: string;
  path: string;
  idx: { data: Buffer; count: number } | null;
}

/** The object, null if it is there but deltified, undefined if this pack does not hold it. */
function _lookup(pack: _Pack, oid: string): RawObject | null | undefined {
  let idx = pack.idx;
  if (!idx) {
    try {
      const data = fs.readFileSync(pack.path);
      idx = pack.idx = { data, count: data.readUInt32BE(8 + 255 * 4) };
    } catch {
      return undefined; // removed by a repack while we looked
    }
  }
  const { data } = idx;
  const want = Buffer.from(oid, "hex");
  const first = want[0]!;
  let lo = first === 0 ? 0 : data.readUInt32BE(8 + (first - 1) * 4);
  let hi = data.readUInt32BE(8 + first * 4) - 1;
  const names = 8 + 256 * 4;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    // the entry at `mid` against the wanted oid
    const cmp = data.compare(want, 0, 20, names + mid * 20, names + mid * 20 + 20);
    if (cmp === 0) return _readPacked(pack, idx, mid);
    if (cmp < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

function _readPacked(pack: _Pack, idx: NonNullable<_Pack["idx"]>, i: number): RawObject | null | undefined {
  const offset = idx.data.readUInt32BE(8 + 256 * 4 + idx.count * 24 + i * 4);
  if (offset & 0x80000000) return null; // packs over 2 GiB: leave to isomorphic-git
  let fd: number;
  try {
    fd = fs.openSync(pack.path.replace(/\.idx$/, ".pack"), "r");
  } catch {
    return undefined; // folded away by a repack since its index was read: the caller looks again
  }
  try {
    // the compressed length is not stored: read a chunk, and a bigger one while the stream is cut short
    for (let size = 16_384; ; size *= 4) {
      const buf = Buffer.alloc(size);
      const got = fs.readSync(fd, buf, 0, size, offset);
      let p = 0;
      let byte = buf[p++]!;
      const type = TYPES[(byte >> 4) & 7];
      while (byte & 0x80) byte = buf[p++]!;
      if (!type) return null; // OFS_DELTA / REF_DELTA
      try {
        return { type, body: inflateSync(buf.subarray(p, got)) };
      } catch (err) {
        if ((err as { code?: string }).code !== "Z_BUF_ERROR" || got < size) throw err;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function _parseLoose(raw: Buffer): RawObject {
  const nul = raw.indexOf(0);
  const type = raw.subarray(0, raw.indexOf(32)).toString() as RawObject["type"];
  return { type, body: raw.subarray(nul + 1) };
}

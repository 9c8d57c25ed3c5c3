/**
 * @module Reading git objects by oid without loading whole packfiles: loose objects, or a binary search in a
 * pack's index and a read of just that object's bytes, deltas resolved here. Every read is bounded: an object's
 * size is read from its header before anything is inflated, inflating never produces more than that size, and
 * an object over the caller's limit is refused (`too_large`) — a remote's 2 MB blob bomb never becomes 512 MB in
 * memory. A short-lived CLI process reads the two or three trees it needs in well under a millisecond.
 */
import fs from "node:fs";
import { constants, inflateSync } from "node:zlib";
import { DroverError } from "../core/errors.ts";

export type ObjectType = "commit" | "tree" | "blob" | "tag";

export interface RawObject {
  type: ObjectType;
  body: Buffer;
}

export interface ObjectReader {
  /** The object, or null when this repository does not hold it; throws `too_large` past `maxBytes`. */
  read(oid: string, maxBytes: number): RawObject | null;
  /** Whether this repository holds the object (nothing is read). */
  has(oid: string): boolean;
}

const TYPES = [undefined, "commit", "tree", "blob", "tag", undefined, "ofs_delta", "ref_delta"] as const;
/** Delta chains longer than this are refused (git's own default depth is 50). */
const MAX_CHAIN = 100;
/** A delta's base may be larger than the object it makes, but never larger than this. */
const MAX_BASE_BYTES = 64 * 1024 * 1024;

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

  function fromPacks(oid: string, maxBytes: number, depth: number): RawObject | undefined {
    for (const pack of packs.values()) {
      const offset = _offsetOf(pack, oid);
      if (offset !== undefined) return _readAt(pack, offset, { maxBytes, depth, base });
    }
    return undefined;
  }

  /** Any object by oid, for a delta's base: loose or in any pack. */
  function base(oid: string, maxBytes: number, depth: number): RawObject | null {
    const loose = _readLoose(`${gitdir}/objects/${oid.slice(0, 2)}/${oid.slice(2)}`, maxBytes);
    if (loose) return loose;
    if (!listedAt) list();
    const hit = fromPacks(oid, maxBytes, depth);
    if (hit !== undefined) return hit;
    list(); // a pack written or repacked by another process since we looked
    return fromPacks(oid, maxBytes, depth) ?? null;
  }

  function has(oid: string): boolean {
    if (fs.existsSync(`${gitdir}/objects/${oid.slice(0, 2)}/${oid.slice(2)}`)) return true;
    list();
    for (const pack of packs.values()) if (_offsetOf(pack, oid) !== undefined) return true;
    return false;
  }

  return { read: (oid, maxBytes) => base(oid, maxBytes, 0), has };
}

// --- internal ---

interface _Pack {
  name: string;
  path: string;
  idx: { data: Buffer; count: number } | null;
}

type _Base = (oid: string, maxBytes: number, depth: number) => RawObject | null;

function _tooLarge(what: string, size: number, maxBytes: number): DroverError {
  return new DroverError("too_large", `Cannot read ${what}: ${size} bytes, over the limit of ${maxBytes}`, {
    details: { size },
  });
}

/** A loose object, its header read from a small inflated prefix before the whole is inflated. */
function _readLoose(file: string, maxBytes: number): RawObject | null {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch {
    return null;
  }
  const head = inflateSync(raw.subarray(0, 128), { finishFlush: constants.Z_SYNC_FLUSH });
  const nul = head.indexOf(0);
  const [type, size] = head.subarray(0, nul).toString("latin1").split(" ") as [ObjectType, string];
  if (Number(size) > maxBytes) throw _tooLarge(`object "${file.slice(-41).replace("/", "")}"`, Number(size), maxBytes);
  let body: Buffer;
  try {
    body = inflateSync(raw, { maxOutputLength: nul + 1 + Number(size) }).subarray(nul + 1);
  } catch {
    throw new DroverError(
      "conflict",
      `Cannot read the loose object "${file}": it is corrupt or larger than its header says`,
    );
  }
  return { type, body };
}

function _offsetOf(pack: _Pack, oid: string): number | undefined {
  let idx = pack.idx;
  if (!idx) {
    try {
      const data = fs.readFileSync(pack.path);
      idx = pack.idx = { data, count: data.readUInt32BE(8 + 255 * 4) };
    } catch {
      return undefined; // removed by a repack while we looked
    }
  }
  const { data, count } = idx;
  const want = Buffer.from(oid, "hex");
  const first = want[0]!;
  let lo = first === 0 ? 0 : data.readUInt32BE(8 + (first - 1) * 4);
  let hi = data.readUInt32BE(8 + first * 4) - 1;
  const names = 8 + 256 * 4;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const cmp = data.compare(want, 0, 20, names + mid * 20, names + mid * 20 + 20);
    if (cmp === 0) {
      const small = data.readUInt32BE(names + count * 24 + mid * 4);
      if (!(small & 0x80000000)) return small;
      // packs over 2 GiB keep the offset in the large-offset table
      const large = names + count * 28 + (small & 0x7fffffff) * 8;
      return Number(data.readBigUInt64BE(large));
    }
    if (cmp < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** The object at a pack offset; deltas are resolved against their base (bounded in size and chain length). */
function _readAt(
  pack: _Pack,
  offset: number,
  options: { maxBytes: number; depth: number; base: _Base },
): RawObject | undefined {
  const { maxBytes, depth } = options;
  if (depth > MAX_CHAIN)
    throw new DroverError(
      "too_large",
      `Cannot read an object of pack "${pack.name}": its delta chain is longer than ${MAX_CHAIN}`,
    );
  let fd: number;
  try {
    fd = fs.openSync(pack.path.replace(/\.idx$/, ".pack"), "r");
  } catch {
    return undefined; // folded away by a repack since its index was read: the caller looks again
  }
  try {
    const head = Buffer.alloc(32);
    const got = fs.readSync(fd, head, 0, 32, offset);
    let p = 0;
    let byte = head[p++]!;
    const type = TYPES[(byte >> 4) & 7];
    let size = byte & 0x0f;
    for (let shift = 4; byte & 0x80; shift += 7) {
      byte = head[p++]!;
      size += (byte & 0x7f) * 2 ** shift;
    }
    if (!type || p >= got)
      throw new DroverError("conflict", `Cannot read an object of pack "${pack.name}": bad header at offset ${offset}`);
    let baseAt: { offset: number } | { oid: string } | null = null;
    if (type === "ofs_delta") {
      byte = head[p++]!;
      let distance = byte & 0x7f;
      while (byte & 0x80) {
        byte = head[p++]!;
        distance = (distance + 1) * 128 + (byte & 0x7f);
      }
      baseAt = { offset: offset - distance };
    } else if (type === "ref_delta") {
      baseAt = { oid: head.toString("hex", p, p + 20) };
      p += 20;
    }
    // a delta's own data is at most a little larger than the object it makes
    const limit = baseAt ? maxBytes + 1024 + Math.ceil(maxBytes / 8) : maxBytes;
    if (size > limit) throw _tooLarge(`an object of pack "${pack.name}"`, size, maxBytes);
    const body = _inflateAt(fd, offset + p, size);
    if (!baseAt) return { type: type as ObjectType, body };
    return _applyDelta(body, { maxBytes, label: pack.name }, (sourceSize) => {
      const next = { ...options, maxBytes: Math.min(Math.max(maxBytes, sourceSize), MAX_BASE_BYTES), depth: depth + 1 };
      const source =
        "offset" in baseAt ? _readAt(pack, baseAt.offset, next) : options.base(baseAt.oid, next.maxBytes, next.depth);
      if (!source)
        throw new DroverError("conflict", `Cannot read an object of pack "${pack.name}": its delta base is missing`);
      return source;
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Inflates the zlib stream at `position` into exactly `size` bytes, reading more input while it is cut short. */
function _inflateAt(fd: number, position: number, size: number): Buffer {
  for (let chunk = Math.min(Math.max(size + 64, 4096), 1 << 16); ; chunk *= 4) {
    const buf = Buffer.alloc(chunk);
    const got = fs.readSync(fd, buf, 0, chunk, position);
    try {
      return inflateSync(buf.subarray(0, got), { maxOutputLength: Math.max(size, 1) });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ERR_BUFFER_TOO_LARGE")
        throw new DroverError(
          "conflict",
          `Cannot read a packed object: it inflates past the ${size} bytes its header says`,
        );
      // compressed data is never much larger than its output: past that, the stream is broken, not cut short
      if (code !== "Z_BUF_ERROR" || got < chunk || chunk > size * 2 + (1 << 20)) throw err;
    }
  }
}

/** Applies git delta data to its base (fetched only once the result's size is known to be within bounds). */
function _applyDelta(
  delta: Buffer,
  options: { maxBytes: number; label: string },
  source: (size: number) => RawObject,
): RawObject {
  let p = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = delta[p++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return value;
    }
  };
  const sourceSize = varint();
  const targetSize = varint();
  if (targetSize > options.maxBytes)
    throw _tooLarge(`an object of pack "${options.label}"`, targetSize, options.maxBytes);
  const base = source(sourceSize);
  const out = Buffer.alloc(targetSize);
  let written = 0;
  const bad = () =>
    new DroverError("conflict", `Cannot read an object of pack "${options.label}": its delta is corrupt`);
  while (p < delta.length) {
    const op = delta[p++]!;
    if (op & 0x80) {
      let from = 0;
      let length = 0;
      for (let i = 0; i < 4; i++) if (op & (1 << i)) from += delta[p++]! * 2 ** (8 * i);
      for (let i = 0; i < 3; i++) if (op & (1 << (4 + i))) length += delta[p++]! * 2 ** (8 * i);
      if (length === 0) length = 0x10000;
      if (from + length > base.body.length || written + length > targetSize) throw bad();
      base.body.copy(out, written, from, from + length);
      written += length;
    } else if (op) {
      if (written + op > targetSize || p + op > delta.length) throw bad();
      delta.copy(out, written, p, p + op);
      written += op;
      p += op;
    } else throw bad();
  }
  if (written !== targetSize) throw bad();
  return { type: base.type, body: out };
}

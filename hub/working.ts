/**
 * @module The hub's working files (`.drover/hub/<path>`): what other features read, written by drover itself.
 * Only regular files are read, up to a size; a write never follows a symbolic link, and whatever stands in its
 * way (a folder where the file goes, a file where a folder goes, a link) is moved aside to `.drover/rejected/`
 * and reported by the caller, so no local file can stop a commit from being applied.
 */
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { readRegularFile, writeFileAtomic } from "../core/files.ts";

/** Working files larger than this are never read (hub files from a remote are capped by `hub.max_file_bytes`). */
export const MAX_WORKING_BYTES = 64 * 1024 * 1024;

/** The text of a working file; null when it is missing, not a regular file, or too large. */
export function readWorking(dir: string, path: string): string | null {
  const read = readRegularFile(join(dir, path), { maxBytes: MAX_WORKING_BYTES });
  return read && "text" in read ? read.text : null;
}

/**
 * Writes a working file: atomically when other processes write or watch it too (`shared`: heartbeats), else in
 * place — only the hub writes those, under its lock, after the commit that holds them and before the SQLite
 * record of it, so a write cut short by a crash is rewritten from the commit by the next catch-up. Returns the
 * paths (relative to `.drover/`) of what had to be moved aside first.
 */
export function writeWorking(
  dir: string,
  path: string,
  content: string | null,
  options: { shared: boolean },
): string[] {
  const file = join(dir, path);
  const aside = _clearWay(dir, path, content !== null);
  if (content === null) {
    if (_kind(file) === "file") unlinkSync(file);
    return aside;
  }
  if (options.shared) writeFileAtomic(file, content);
  else {
    // O_NOFOLLOW: a link put where this file goes is never written through (it was moved aside above)
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
  }
  return aside;
}

/** The file names in a folder (regular files only, temp files of writers in progress left out); none when missing. */
export function listWorking(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && !e.name.endsWith(".tmp"))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** The git blob id of some text, to compare a working file with a tree entry without reading the blob. */
export function blobOid(content: string): string {
  const body = Buffer.from(content);
  return new Bun.CryptoHasher("sha1").update(`blob ${body.length}\0`).update(body).digest("hex");
}

// --- internal ---

/**
 * Makes sure every folder on the way to `path` is a real folder and the file's place holds a regular file or
 * nothing; anything else is renamed into `.drover/rejected/`. Returns what was moved.
 */
function _clearWay(dir: string, path: string, creating: boolean): string[] {
  const moved: string[] = [];
  const parts = path.split("/");
  let at = dir;
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    const last = i === parts.length - 1;
    const kind = _kind(at);
    if (kind === null) {
      if (!last && creating) mkdirSync(at, { recursive: true, mode: 0o700 });
      if (!last && !creating) return moved;
      continue;
    }
    if (kind === (last ? "file" : "dir")) continue;
    moved.push(_setAside(dir, at));
    if (!last && creating) mkdirSync(at, { recursive: true, mode: 0o700 });
    if (!last && !creating) return moved;
  }
  return moved;
}

function _kind(file: string): "file" | "dir" | "other" | null {
  try {
    const st = lstatSync(file);
    return st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
  } catch {
    return null;
  }
}

function _setAside(dir: string, file: string): string {
  const rejected = join(dirname(dir), "rejected");
  mkdirSync(rejected, { recursive: true, mode: 0o700 });
  const target = join(rejected, `${relative(dir, file).replaceAll("/", "_")}.${Date.now().toString(36)}`);
  renameSync(file, target);
  return relative(dirname(dir), target);
}

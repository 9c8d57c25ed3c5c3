/**
 * @module Local files under `.drover/`, which any process of this user (or a disk fault) may have replaced by
 * something else. Reading: only a regular file, never through a symlink, never more than a cap, never a FIFO
 * or device that would block or never end. Writing: atomically (a temp file beside it, then a rename) so
 * readers never see half of one, and never through a symlink or into a FIFO planted at the temp path.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";

/** What `readRegularFile` found: the text, or why it was not read. */
export type FileRead = { text: string } | { error: string };

/**
 * Reads a regular file of at most `maxBytes` (UTF-8); null when nothing is there. Anything else at the path — a
 * symlink (refused, not followed), FIFO, socket, device, folder, or a file over the cap — is not read and
 * comes back as the reason. The path is checked with `lstat`, opened with O_NOFOLLOW|O_NONBLOCK and checked
 * again on the open handle, so a file swapped in between is caught too.
 */
export function readRegularFile(file: string, options: { maxBytes: number }): FileRead | null {
  const { maxBytes } = options;
  const opened = openRegularFile(file, { maxBytes });
  if (opened === null || "error" in opened) return opened;
  const { fd, size } = opened;
  try {
    const read = _readAtMost(fd, Math.min(size, maxBytes), maxBytes);
    return read.length > maxBytes ? { error: _tooLarge(read.length) } : { text: read.toString("utf8") };
  } catch (err) {
    return _readFailure(err);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a regular file for reading as `readRegularFile` does (never a symlink, FIFO, device or folder; checked
 * before and after opening), for a caller that reads parts of it (a log's tail); the caller closes `fd`.
 */
export function openRegularFile(
  file: string,
  options: { maxBytes?: number } = {},
): { fd: number; size: number } | { error: string } | null {
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  let fd: number;
  try {
    const problem = _refusal(lstatSync(file), maxBytes);
    if (problem) return { error: problem };
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return _readFailure(err);
  }
  try {
    const stat = fstatSync(fd);
    const problem = _refusal(stat, maxBytes);
    if (!problem) return { fd, size: stat.size };
    closeSync(fd);
    return { error: problem };
  } catch (err) {
    closeSync(fd);
    return _readFailure(err);
  }
}

/**
 * Writes (or, for null, removes) a file atomically; makes its folder only when it is missing. A file it
 * replaces keeps its permissions; a new one gets the process's default (0600 in drover: see `cli.ts`).
 */
export function writeFileAtomic(file: string, content: string | null): void {
  if (content === null) {
    rmSync(file, { force: true });
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true }); // a leftover, or something planted there: the temp file is always made new
  _create(tmp, content, _regularMode(file));
  renameSync(tmp, file);
}

// --- internal ---

/** Why a file with this stat is not read, or null when it may be. */
function _refusal(stat: Stats, maxBytes: number): string | null {
  if (stat.isSymbolicLink()) return "not a regular file: a symlink (not followed)";
  if (stat.isFIFO()) return "not a regular file: a FIFO";
  if (stat.isSocket()) return "not a regular file: a socket";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "not a regular file: a device";
  if (stat.isDirectory()) return "not a regular file: a folder";
  if (!stat.isFile()) return "not a regular file";
  return stat.size > maxBytes ? _tooLarge(stat.size) : null;
}

function _tooLarge(size: number): string {
  return `file too large (${size} bytes)`;
}

function _readFailure(err: unknown): { error: string } | null {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return null;
  if (code === "ELOOP") return { error: "not a regular file: a symlink (not followed)" };
  return { error: `cannot be read (${code ?? (err as Error).message})` };
}

/** Reads up to `limit + 1` bytes (one more than allowed tells a file that grew past the cap), expecting `expected`. */
function _readAtMost(fd: number, expected: number, limit: number): Buffer {
  let buf = Buffer.allocUnsafe(expected + 1);
  let n = 0;
  for (;;) {
    const got = readSync(fd, buf, n, buf.length - n, null);
    if (got === 0) return buf.subarray(0, n);
    n += got;
    if (n > limit) return buf.subarray(0, n);
    if (n === buf.length) buf = Buffer.concat([buf, Buffer.allocUnsafe(Math.min(buf.length, limit + 1 - n))]);
  }
}

/** The permission bits of the regular file at `file`, if one is there. */
function _regularMode(file: string): number | undefined {
  try {
    const stat = lstatSync(file);
    return stat.isFile() ? stat.mode & 0o7777 : undefined;
  } catch {
    return undefined;
  }
}

/** Creates a new file (never an existing path: O_EXCL does not follow a symlink either), making its folder when missing. */
function _create(file: string, content: string, mode: number | undefined): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  let fd: number;
  try {
    fd = openSync(file, flags, 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(file, flags, 0o666);
  }
  try {
    if (mode !== undefined) fchmodSync(fd, mode);
    _writeAll(fd, content);
  } finally {
    closeSync(fd);
  }
}

function _writeAll(fd: number, content: string): void {
  const bytes = Buffer.from(content);
  for (let n = 0; n < bytes.length; ) n += writeSync(fd, bytes, n, bytes.length - n);
}

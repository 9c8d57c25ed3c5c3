/**
 * @module Writing files: atomically (a temp file beside it, then a rename) so readers never see half of one, or
 * in place where nobody reads without the writer's lock and a crash is repaired from elsewhere.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Writes (or, for null, removes) a file atomically; makes its folder only when it is missing. */
export function writeFileAtomic(file: string, content: string | null): void {
  if (content === null) return rmSync(file, { force: true });
  const tmp = `${file}.${process.pid}.tmp`;
  _write(tmp, content);
  renameSync(tmp, file);
}

/**
 * Overwrites (or, for null, removes) a file in place. Replacing a file by rename measured ~0.8 ms on this
 * ext4 volume (it flushes the data first) against ~0.02 ms in place: for files written in bulk under a lock.
 */
export function writeFileInPlace(file: string, content: string | null): void {
  if (content === null) return rmSync(file, { force: true });
  _write(file, content);
}

// --- internal ---

function _write(file: string, content: string) {
  try {
    writeFileSync(file, content);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

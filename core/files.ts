/** @module Writing files so readers never see half of one: a temp file beside it, then a rename. */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Writes (or, for null, removes) a file atomically; makes its folder only when it is missing. */
export function writeFileAtomic(file: string, content: string | null): void {
  if (content === null) return rmSync(file, { force: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, content);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, content);
  }
  renameSync(tmp, file);
}

/**
 * @module The hub's working files (`.drover/hub/<path>`): what other features read, written by drover
 * itself (temp + rename), and the rule for which paths from a remote tree may touch the disk at all.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, writeFileInPlace } from "../../core/files.ts";

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Why a hub path must not be written to disk, or null when it is safe (no `..`, no hidden or odd names). */
export function unsafePathReason(path: string): string | null {
  const parts = path.split("/");
  if (parts.length > 3) return "its path is nested too deep";
  for (const part of parts) if (!SEGMENT.test(part) || part.includes("..")) return `its name "${part}" is not allowed`;
  return null;
}

export function readWorking(dir: string, path: string): string | null {
  try {
    return readFileSync(join(dir, path), "utf8");
  } catch {
    return null;
  }
}

/**
 * Writes a working file: atomically when other processes write or watch it too (`shared`: heartbeats), else in
 * place — only the hub writes those, under its lock, after the commit that holds them and before the SQLite
 * record of it, so a write cut short by a crash is rewritten from the commit by the next catch-up.
 */
export function writeWorking(dir: string, path: string, content: string | null, options: { shared: boolean }): void {
  (options.shared ? writeFileAtomic : writeFileInPlace)(join(dir, path), content);
}

/** The file names in a folder, without temp files and folders; none when it does not exist. */
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

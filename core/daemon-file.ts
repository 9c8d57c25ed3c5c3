/**
 * @module `.drover/daemon.json`: one daemon per repository. The file is created exclusively, so two
 * daemons starting at once cannot both win; a file left by a killed daemon is recognised and replaced without
 * manual cleanup — its pid is gone, or (Linux) the pid now belongs to a process that started at another time.
 */
import { existsSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { DroverError } from "./errors.ts";
import { readRegularFile, writeFileAtomic } from "./files.ts";
import type { Paths } from "./paths.ts";
import { processAlive } from "./process.ts";

export interface DaemonInfo {
  pid: number;
  /**
   * When that pid's process started, as the OS tells it (Linux: field 22 of `/proc/<pid>/stat`, clock ticks
   * since boot, kept as text); null where it cannot be read. A live pid with another start time is not the daemon.
   */
  pid_start: string | null;
  host: string;
  port: number | null;
  /** Where the daemon answers, once it listens. */
  url: string | null;
  started_at: string;
  version: string;
}

/** The running daemon of this project, or null when none runs (a stale file counts as none). */
export function readDaemon(paths: Paths): DaemonInfo | null {
  const info = _read(paths);
  return info && _alive(info) ? info : null;
}

/** Takes the one-daemon slot for this process, or throws `already_running` naming the holder's pid. */
export function claimDaemon(paths: Paths, info: DaemonInfo): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(paths.daemon, JSON.stringify(info, null, 2) + "\n", { flag: "wx", mode: 0o600 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = _read(paths);
    if (holder && _alive(holder)) {
      throw new DroverError(
        "already_running",
        `Cannot start: a daemon is already running for "${paths.root}" with pid ${holder.pid}` +
          (holder.port ? ` on port ${holder.port}` : ""),
        { details: holder },
      );
    }
    try {
      unlinkSync(paths.daemon); // stale: its process is gone
    } catch {
      // another starter removed it first; try again
    }
  }
  throw new DroverError("already_running", `Cannot start: "${paths.daemon}" keeps changing`);
}

/** Rewrites the file atomically (after the port is known). */
export function updateDaemon(paths: Paths, info: DaemonInfo): void {
  writeFileAtomic(paths.daemon, JSON.stringify(info, null, 2) + "\n");
}

/** Removes the file if it is this process's. */
export function releaseDaemon(paths: Paths, pid: number = process.pid): void {
  if (_read(paths)?.pid === pid && existsSync(paths.daemon)) unlinkSync(paths.daemon);
}

// --- internal ---

const _infoSchema = z.object({
  pid: z.number().int().positive(), // 0 and -1 would make kill(pid, 0) ask about whole process groups
  pid_start: z.string().nullable().default(null), // absent in files from drover before it was recorded
  host: z.string(),
  port: z.number().int().nullable(),
  url: z.string().nullable(),
  started_at: z.string(),
  version: z.string(),
});

function _read(paths: Paths): DaemonInfo | null {
  const read = readRegularFile(paths.daemon, { maxBytes: 64 * 1024 });
  if (!read || "error" in read) return null;
  try {
    const parsed = _infoSchema.safeParse(JSON.parse(read.text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function _alive(info: DaemonInfo): boolean {
  if (info.host !== hostname()) return true; // cannot check another host's process: assume it runs
  return processAlive(info.pid, info.pid_start);
}

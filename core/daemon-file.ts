/**
 * @module `.drover/daemon.json`: one daemon per repository. The file is created exclusively, so two
 * daemons starting at once cannot both win; a file left by a killed daemon is recognised (its pid is gone)
 * and replaced without manual cleanup.
 */
import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { DroverError } from "./errors.ts";
import type { Paths } from "./paths.ts";

export interface DaemonInfo {
  pid: number;
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
      writeFileSync(paths.daemon, JSON.stringify(info, null, 2) + "\n", { flag: "wx" });
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
  const tmp = `${paths.daemon}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info, null, 2) + "\n");
  renameSync(tmp, paths.daemon);
}

/** Removes the file if it is this process's. */
export function releaseDaemon(paths: Paths, pid: number = process.pid): void {
  if (_read(paths)?.pid === pid && existsSync(paths.daemon)) unlinkSync(paths.daemon);
}

// --- internal ---

function _read(paths: Paths): DaemonInfo | null {
  try {
    const info = JSON.parse(readFileSync(paths.daemon, "utf8")) as DaemonInfo;
    return typeof info.pid === "number" ? info : null;
  } catch {
    return null;
  }
}

function _alive(info: DaemonInfo): boolean {
  if (info.host !== hostname()) return true; // cannot check another host's process: assume it runs
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // a killed but unreaped child still answers kill(0): treat a zombie as gone
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${info.pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

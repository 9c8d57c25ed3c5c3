/**
 * @module Where things live: the project root (the folder holding `.drover/`, or the git top level for
 * `init`) and every path of SPEC §2.
 */
import { chmodSync, existsSync, lstatSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { DroverError } from "./errors.ts";

export interface Paths {
  root: string;
  dir: string;
  config: string;
  gitignore: string;
  hub: string;
  db: string;
  machine: string;
  daemon: string;
  token: string;
  lock: string;
  worktrees: string;
}

export function pathsFor(root: string): Paths {
  const dir = join(root, ".drover");
  return {
    root,
    dir,
    config: join(dir, "config.toml"),
    gitignore: join(dir, ".gitignore"),
    hub: join(dir, "hub"),
    db: join(dir, "state.db"),
    machine: join(dir, "machine.json"),
    daemon: join(dir, "daemon.json"),
    token: join(dir, "token"),
    lock: join(dir, "hub.lock"),
    worktrees: join(dir, "worktrees"),
  };
}

/** The nearest ancestor of `cwd` that holds an initialized `.drover/` (one with `machine.json`). */
export function findProject(cwd: string = process.cwd()): Paths {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, ".drover", "machine.json"))) return pathsFor(dir);
    if (dirname(dir) === dir) break;
  }
  throw new DroverError(
    "not_initialized",
    `Cannot find a drover project from "${cwd}": run "drover init" in a git repository`,
  );
}

/** The git work tree that holds `cwd` (where `init` puts `.drover/`). */
export function findGitRoot(cwd: string = process.cwd()): string {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const git = join(dir, ".git");
    if (existsSync(git) && (statSync(git).isDirectory() || statSync(git).isFile())) return dir;
    if (dirname(dir) === dir) break;
  }
  throw new DroverError("not_initialized", `Cannot init in "${cwd}": not inside a git repository`);
}

/**
 * Makes `.drover/` private (SPEC §12): the folder and the folders in it 0700, every file 0600. drover's own
 * processes create them so (umask 077, see `cli.ts`); this fixes what others made — git checking out
 * `config.toml`, an older drover. A subfolder already 0700 is not walked again (the hub holds thousands of
 * files); `worktrees/` is left as git made it, the closed folder above keeping others out. Symlinks are left
 * alone (chmod would follow them). Returns the paths it could not change (another owner), for `doctor`.
 */
export function secureProjectDir(paths: Paths): string[] {
  const failed: string[] = [];
  _secure(paths.dir, { skip: paths.worktrees, failed, top: true });
  return failed;
}

// --- internal ---

function _secure(dir: string, walk: { skip: string; failed: string[]; top: boolean }): void {
  let names: string[];
  try {
    if (!walk.top && (lstatSync(dir).mode & 0o777) === 0o700) return;
    names = readdirSync(dir);
  } catch {
    return; // gone, or not a folder we may read
  }
  for (const name of names) {
    const path = join(dir, name);
    if (path === walk.skip) continue;
    try {
      const stat = lstatSync(path);
      if (stat.isDirectory()) _secure(path, { ...walk, top: false });
      else if (stat.isFile()) _chmod(path, stat.mode, 0o600, walk.failed);
    } catch {
      // removed meanwhile
    }
  }
  try {
    _chmod(dir, lstatSync(dir).mode, 0o700, walk.failed); // last: an interrupted walk is done again next time
  } catch {
    // removed meanwhile
  }
}

function _chmod(path: string, mode: number, want: number, failed: string[]): void {
  if ((mode & 0o777) === want) return;
  try {
    chmodSync(path, want);
  } catch {
    failed.push(path);
  }
}

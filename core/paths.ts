/**
 * @module Where things live: the project root (the folder holding `.drover/`, or the git top level for
 * `init`) and every path of SPEC §2.
 */
import { existsSync, statSync } from "node:fs";
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
  throw new DroverError("not_initialized", `Cannot find a drover project from "${cwd}": run "drover init" in a git repository`);
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

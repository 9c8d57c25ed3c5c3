/** Test machines for sync: a project clone per machine whose `origin` is a shared remote, drover joined to it. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initProject } from "../cli/init.ts";
import type { Clock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import type { Paths } from "../core/paths.ts";
import type { Runtime } from "../runtime.ts";
import { parseCommitMessage, type OpRecord } from "../features/sync/apply.ts";
import { testRuntime } from "./helpers.ts";

export interface Machine {
  dir: string;
  paths: Paths;
  rt: Runtime;
  events: BusEvent[];
  op<T = any>(name: string, input?: Record<string, unknown>): Promise<T>;
  head(): Promise<string | null>;
  cleanup(): Promise<void>;
}

/** A new git project under `parent` whose origin is `remote`, drover initialised (joining or creating the hub branch). */
export async function joinedProject(remote: string, parent = tmpdir()): Promise<{ dir: string; paths: Paths }> {
  const dir = realpathSync(mkdtempSync(join(parent, "drover-machine-")));
  execFileSync("git", ["init", "-q", dir]);
  execFileSync("git", ["remote", "add", "origin", remote], { cwd: dir });
  const { paths } = await initProject(dir);
  return { dir, paths };
}

/** A joined project with a runtime on it (CLI mode: rounds run only when a test or a claim asks). */
export async function machine(remote: string, options: { clock?: Clock; config?: string } = {}): Promise<Machine> {
  const { dir, paths } = await joinedProject(remote);
  if (options.config) await Bun.write(paths.config, options.config);
  const { rt, events } = await testRuntime(paths, { clock: options.clock, mode: "cli" });
  return {
    dir,
    paths,
    rt,
    events,
    op: (name, input = {}) => rt.ops.run(name, input) as Promise<any>,
    head: () => rt.ctx.services.hub.repo.head(),
    async cleanup() {
      await rt.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `git` in a bare repository (the remote), trimmed output. */
export function remoteGit(bare: string, ...args: string[]): string {
  return execFileSync("git", ["--git-dir", bare, ...args], { encoding: "utf8", maxBuffer: 1 << 30 }).trim();
}

export interface ItemVersion {
  commit: string;
  time: number;
  item: any;
  /** The ops of the commit that wrote this version. */
  ops: OpRecord[];
}

/** Every version of every item file in the remote's history, oldest commit first. */
export function itemHistory(bare: string): Map<string, ItemVersion[]> {
  const out = new Map<string, ItemVersion[]>();
  const commits = remoteGit(bare, "rev-list", "--reverse", "--format=%ct", "drover/hub").split("\n");
  for (let i = 0; i < commits.length; i += 2) {
    const commit = commits[i]!.replace("commit ", "");
    const time = Number(commits[i + 1]);
    const ops = parseCommitMessage(remoteGit(bare, "show", "-s", "--format=%B", commit) + "\n");
    const changed = remoteGit(bare, "diff-tree", "--root", "-r", "--name-only", "--no-commit-id", commit).split("\n").filter((p) => p.startsWith("items/"));
    for (const path of changed) {
      let text = "";
      try {
        text = execFileSync("git", ["--git-dir", bare, "show", `${commit}:${path}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      } catch {
        continue; // removed in this commit
      }
      const item = JSON.parse(text);
      if (!out.has(item.id)) out.set(item.id, []);
      out.get(item.id)!.push({ commit, time, item, ops });
    }
  }
  return out;
}

/**
 * Per item, the agent of each grant in the remote's history, in order: the op records of every commit, oldest
 * first. Fences count grants, so the agent at index k is the holder of fence k + 1.
 */
export function grantLog(bare: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const message of remoteGit(bare, "log", "--reverse", "--format=%B%x00", "drover/hub").split("\0")) {
    for (const o of parseCommitMessage(message.trim() + "\n")) {
      const a = o.args as { id?: string | null; agent?: string };
      if ((o.op === "item.claim" || o.op === "item.next") && a.id) {
        if (!out.has(a.id)) out.set(a.id, []);
        out.get(a.id)!.push(a.agent!);
      }
    }
  }
  return out;
}

export interface GrantCheck {
  grants: number;
  /** Each a grant that skipped a number no op accounts for, repeated one, or began while the last was live. */
  violations: string[];
}

/**
 * P2 from the remote's history: every grant numbered one more than the last, none while the last was live.
 * One commit carries a round's ops, so a commit may hold several grants: its ops must account for each.
 */
export function checkGrants(bare: string): GrantCheck {
  let grants = 0;
  const violations: string[] = [];
  for (const [id, versions] of itemHistory(bare)) {
    let previous: any = null;
    for (const { commit, item, ops } of versions) {
      const fence = item.fence as number;
      const last = (previous?.fence as number | undefined) ?? 0;
      if (fence !== last) {
        const granting = ops.filter((o) => (o.op === "item.claim" || o.op === "item.next") && o.args.id === id).length;
        if (fence < last) violations.push(`${id}: fence went back from ${last} to ${fence} in ${commit}`);
        else if (fence - last > granting) violations.push(`${id}: fence jumped from ${last} to ${fence} with ${granting} grants in ${commit}`);
        else grants += fence - last;
        // a single grant on top of a visible claim: that claim must have run out by then, or an op of the same
        // commit ended it first
        if (fence - last === 1 && item.claim?.fence === fence && previous?.claim && Date.parse(previous.claim.expires_at) > Date.parse(item.claim.claimed_at) && !_endedInCommit(id, ops)) {
          violations.push(`${id}: fence ${fence} granted while fence ${last} was live, in ${commit}`);
        }
      }
      previous = item;
    }
  }
  return { grants, violations };
}

const UNCLAIMED_STAGES = new Set(["backlog", "done", "abandoned", "archived"]);

/** True when one of `ops`, before the grant of `id` among them, ends the claim on `id`. */
function _endedInCommit(id: string, ops: OpRecord[]): boolean {
  for (const o of ops) {
    const a = o.args as any;
    if ((o.op === "item.claim" || o.op === "item.next") && a.id === id) return false;
    if ((o.op === "item.release" || o.op === "item.expire") && a.id === id) return true;
    if (o.op === "agent.takeover" && a.items?.includes(id)) return true;
    if (o.op === "item.move" && a.id === id && UNCLAIMED_STAGES.has(a.to)) return true;
  }
  return false;
}

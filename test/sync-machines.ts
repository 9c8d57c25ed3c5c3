/** Test machines for sync: a project clone per machine whose `origin` is a shared remote, drover joined to it. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initProject } from "../cli/init.ts";
import type { Clock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import type { Paths } from "../core/paths.ts";
import { parseItemFile } from "../features/pipeline/item.ts";
import { type OpRecord, parseCommitMessage } from "../hub/apply.ts";
import type { Runtime } from "../runtime.ts";
import { testRuntime, trustConfig } from "./helpers.ts";

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

/** A joined project with a runtime on it (CLI mode by default: rounds run only when a test or a claim asks). */
export async function machine(
  remote: string,
  options: { clock?: Clock; config?: string; trusted?: boolean; mode?: "cli" | "daemon" } = {},
): Promise<Machine> {
  const { dir, paths } = await joinedProject(remote);
  if (options.config) await Bun.write(paths.config, options.config);
  if (options.trusted) await trustConfig(paths);
  const { rt, events } = await testRuntime(paths, { clock: options.clock, mode: options.mode ?? "cli" });
  return {
    dir,
    paths,
    rt,
    events,
    op: (name, input = {}) => rt.ops.run(name, input) as Promise<any>,
    head: () => rt.ctx.hub.repo.head(),
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

/** One commit of the remote's history: its ops, and every item file it wrote (removals left out). */
export interface RemoteCommit {
  commit: string;
  time: number;
  ops: OpRecord[];
  items: any[];
}

/**
 * The remote branch's whole history, oldest commit first, in two git processes: one `git log` for messages and
 * changed paths, one `git cat-file --batch` for the item files they wrote. Unparsable item files are left out.
 */
export function remoteHistory(bare: string): RemoteCommit[] {
  const log = remoteGit(
    bare,
    "log",
    "--reverse",
    "--root",
    "--no-renames",
    "--raw",
    "--no-abbrev",
    "--format=%x01%H %ct%n%B%x02",
    "drover/hub",
  );
  const commits: Array<RemoteCommit & { blobs: Array<{ oid: string; path: string }> }> = [];
  for (const chunk of log.split("\x01").slice(1)) {
    const [head, rest = ""] = chunk.split("\x02");
    const [commit, time] = head!.slice(0, head!.indexOf("\n")).split(" ");
    const blobs = rest
      .split("\n")
      .map((l) => /^:\d+ \d+ [0-9a-f]+ ([0-9a-f]+) [AM]\t(items\/\S+)$/.exec(l))
      .filter((m) => m !== null)
      .map(([, oid, path]) => ({ oid: oid!, path: path! }));
    commits.push({ commit: commit!, time: Number(time), ops: parseCommitMessage(head! + "\n"), items: [], blobs });
  }
  const texts = _catBlobs(
    bare,
    commits.flatMap((c) => c.blobs.map((b) => b.oid)),
  );
  // items as drover reads them: a teammate's hostile push (chaos) commits files no machine takes for an item
  const items = (blobs: Array<{ oid: string; path: string }>) =>
    blobs.flatMap(({ oid, path }) => {
      const parsed = parseItemFile(path, texts.get(oid) ?? "");
      return "item" in parsed ? [parsed.item] : [];
    });
  return commits.map(({ blobs, ...c }) => ({ ...c, items: items(blobs) }));
}

export interface ItemVersion {
  commit: string;
  time: number;
  item: any;
  /** The ops of the commit that wrote this version. */
  ops: OpRecord[];
}

/** Every version of every item file in a history, oldest commit first. */
export function itemHistory(history: RemoteCommit[]): Map<string, ItemVersion[]> {
  const out = new Map<string, ItemVersion[]>();
  for (const { commit, time, ops, items } of history) {
    for (const item of items) {
      if (!out.has(item.id)) out.set(item.id, []);
      out.get(item.id)!.push({ commit, time, item, ops });
    }
  }
  return out;
}

/**
 * Per item, the agent of each grant in a history, in order: the op records of every commit, oldest first.
 * Fences count grants, so the agent at index k is the holder of fence k + 1.
 */
export function grantLog(history: RemoteCommit[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const o of history.flatMap((c) => c.ops)) {
    const a = o.args as { id?: string | null; agent?: string };
    if ((o.op === "item.claim" || o.op === "item.next") && a.id) {
      if (!out.has(a.id)) out.set(a.id, []);
      out.get(a.id)!.push(a.agent!);
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
export function checkGrants(history: RemoteCommit[]): GrantCheck {
  let grants = 0;
  const violations: string[] = [];
  for (const [id, versions] of itemHistory(history)) {
    let previous: any = null;
    for (const { commit, item, ops } of versions) {
      const fence = item.fence as number;
      const last = (previous?.fence as number | undefined) ?? 0;
      if (fence !== last) {
        const granting = ops.filter((o) => (o.op === "item.claim" || o.op === "item.next") && o.args.id === id).length;
        if (fence < last) violations.push(`${id}: fence went back from ${last} to ${fence} in ${commit}`);
        else if (fence - last > granting)
          violations.push(`${id}: fence jumped from ${last} to ${fence} with ${granting} grants in ${commit}`);
        else grants += fence - last;
        // a single grant on top of a visible claim: that claim must have run out by then, or an op of the same
        // commit ended it first
        if (
          fence - last === 1 &&
          item.claim?.fence === fence &&
          previous?.claim &&
          Date.parse(previous.claim.expires_at) > Date.parse(item.claim.claimed_at) &&
          !_endedInCommit(id, ops)
        ) {
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

/** The contents of blobs by id, read in one `git cat-file --batch`. */
function _catBlobs(bare: string, oids: string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!oids.length) return out;
  const raw = execFileSync("git", ["--git-dir", bare, "cat-file", "--batch"], {
    input: oids.join("\n") + "\n",
    maxBuffer: 1 << 30,
  });
  for (let p = 0; p < raw.length; ) {
    const eol = raw.indexOf(10, p);
    const [oid, , size] = raw.toString("latin1", p, eol).split(" ");
    out.set(oid!, raw.toString("utf8", eol + 1, eol + 1 + Number(size)));
    p = eol + 1 + Number(size) + 1;
  }
  return out;
}

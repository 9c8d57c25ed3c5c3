/**
 * A teammate with push access and bad intentions (or a broken tool), working straight on the bare remote with git
 * plumbing: commits whose trees hold what no drover writes — a file where a folder belongs and the other way round
 * at every level, symbolic links, submodules, executables, oversized and bomb blobs, odd names — and rewinds of
 * the hub branch. Used by the hostile-remote tests and the chaos run.
 */
import { execFileSync } from "node:child_process";

const BRANCH = "refs/heads/drover/hub";

export interface Entry {
  mode: string;
  type: "blob" | "tree" | "commit";
  oid: string;
}

/** One change to the hub's tree: at `path`, put `entry` (or remove what is there). */
export interface Mutation {
  path: string;
  entry: Entry | null;
  /** What it is, for messages. */
  label: string;
}

/** The kinds of hostile entry a mutation can put somewhere. */
export type Hostile = "file" | "folder" | "symlink" | "submodule" | "executable" | "oversized" | "bomb";

export const HOSTILE: readonly Hostile[] = [
  "file",
  "folder",
  "symlink",
  "submodule",
  "executable",
  "oversized",
  "bomb",
];

/** Paths of the hub's layout at every level, plus odd names beside them. */
export function hubPaths(itemIds: string[]): string[] {
  const items = itemIds.flatMap((id) => [`items/${id.slice(0, 2)}`, `items/${id.slice(0, 2)}/${id}.json`]);
  return [
    "meta.json",
    "heartbeats",
    "heartbeats/intruder.json",
    "items",
    ...items,
    "items/zz",
    "notes",
    ".git",
    "-rf",
    "a b",
    "items/ab/..",
    "heartbeats/ünï.json",
  ];
}

export function git(bare: string, args: string[], input?: string | Buffer): string {
  return execFileSync("git", ["--git-dir", bare, ...args], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 28,
    stdio: ["pipe", "pipe", "pipe"],
  }).trim();
}

/** A blob in the remote: text, or `bytes` zeros (compressed to almost nothing: a bomb). */
export function blob(bare: string, content: string | { zeros: number }): string {
  if (typeof content === "string") return git(bare, ["hash-object", "-w", "--stdin"], content);
  return execFileSync(
    "sh",
    ["-c", `head -c ${content.zeros} /dev/zero | git --git-dir "$0" hash-object -w --stdin`, bare],
    { encoding: "utf8" },
  ).trim();
}

/** The entry a hostile kind stands for (`bombBytes`: how large a bomb inflates). */
export function hostileEntry(bare: string, kind: Hostile, options: { bombBytes?: number } = {}): Entry {
  const head = git(bare, ["rev-parse", BRANCH]);
  switch (kind) {
    case "file":
      return { mode: "100644", type: "blob", oid: blob(bare, '{"not":"what belongs here"}\n') };
    case "folder":
      return {
        mode: "040000",
        type: "tree",
        oid: git(bare, ["mktree"], `100644 blob ${blob(bare, "{}\n")}\tinside.json\n`),
      };
    case "symlink":
      return { mode: "120000", type: "blob", oid: blob(bare, "../../../../../../etc/passwd") };
    case "submodule":
      return { mode: "160000", type: "commit", oid: head };
    case "executable":
      return { mode: "100755", type: "blob", oid: blob(bare, "#!/bin/sh\ntouch /tmp/drover-pwned\n") };
    case "oversized":
      return { mode: "100644", type: "blob", oid: blob(bare, `"${"x".repeat(2_100_000)}"`) };
    case "bomb":
      return { mode: "100644", type: "blob", oid: blob(bare, { zeros: options.bombBytes ?? 64 * 1024 * 1024 }) };
  }
}

/** Commits the mutations on top of the remote's hub head and moves the branch there (as a push would). */
export function pushTree(bare: string, mutations: Mutation[], message = "a teammate's push"): string {
  const head = git(bare, ["rev-parse", BRANCH]);
  let tree = git(bare, ["rev-parse", `${head}^{tree}`]);
  for (const m of mutations) tree = _setEntry(bare, tree, m.path.split("/"), m.entry);
  const commit = _commit(bare, tree, [head], message);
  git(bare, ["update-ref", BRANCH, commit, head]);
  return commit;
}

/** Puts a parentless commit of the mutations on `machine`'s presence ref (what that machine, or one posing as it, pushes). */
export function pushPresence(bare: string, machine: string, mutations: Mutation[]): string {
  let tree: string | null = null;
  for (const m of mutations) tree = _setEntry(bare, tree, m.path.split("/"), m.entry);
  const commit = _commit(bare, tree ?? git(bare, ["mktree"], ""), [], "presence");
  git(bare, ["update-ref", `refs/heads/drover/presence/${machine}`, commit]);
  return commit;
}

/** Moves the hub branch back `steps` first-parent commits (a force-push of an older head). */
export function rewind(bare: string, steps: number): { from: string; to: string } {
  const from = git(bare, ["rev-parse", BRANCH]);
  const to = git(bare, ["rev-parse", `${from}~${steps}`]);
  git(bare, ["update-ref", BRANCH, to, from]);
  return { from, to };
}

/** Replaces the hub branch with a commit that does not descend from its head (a rewrite of history). */
export function rewrite(
  bare: string,
  options: { stepsBack: number; files?: Record<string, string> },
): { from: string; to: string } {
  const from = git(bare, ["rev-parse", BRANCH]);
  const base = git(bare, ["rev-parse", `${from}~${options.stepsBack}`]);
  let tree = git(bare, ["rev-parse", `${base}^{tree}`]);
  for (const [path, text] of Object.entries(options.files ?? { "heartbeats/rewriter.json": "{}\n" })) {
    tree = _setEntry(bare, tree, path.split("/"), { mode: "100644", type: "blob", oid: blob(bare, text) });
  }
  const to = _commit(bare, tree, [base], "rewritten");
  git(bare, ["update-ref", BRANCH, to, from]);
  return { from, to };
}

// --- internal ---

function _commit(bare: string, tree: string, parents: string[], message: string): string {
  const args = ["-c", "user.name=intruder", "-c", "user.email=i@x", "commit-tree", tree];
  return git(bare, [...args, ...parents.flatMap((p) => ["-p", p]), "-m", message]);
}

function _entries(bare: string, tree: string | null): Map<string, Entry> {
  const out = new Map<string, Entry>();
  if (!tree) return out;
  for (const line of git(bare, ["ls-tree", "-z", tree]).split("\0").filter(Boolean)) {
    const [meta, name] = [line.slice(0, line.indexOf("\t")), line.slice(line.indexOf("\t") + 1)];
    const [mode, type, oid] = meta.split(" ") as [string, Entry["type"], string];
    out.set(name, { mode, type, oid });
  }
  return out;
}

function _setEntry(bare: string, tree: string | null, parts: string[], entry: Entry | null): string {
  const entries = _entries(bare, tree);
  const [name, ...rest] = parts as [string, ...string[]];
  if (!rest.length) {
    if (entry) entries.set(name, entry);
    else entries.delete(name);
  } else {
    const current = entries.get(name);
    entries.set(name, {
      mode: "040000",
      type: "tree",
      oid: _setEntry(bare, current?.type === "tree" ? current.oid : null, rest, entry),
    });
  }
  const text = [...entries].map(([n, e]) => `${e.mode} ${e.type} ${e.oid}\t${n}`).join("\0");
  return git(bare, ["mktree", "-z", "--missing"], text ? text + "\0" : "");
}

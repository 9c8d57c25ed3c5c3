/**
 * @module The hub's git repository: commits built directly from trees (only the subtrees that changed are
 * rewritten), tree diffs between two commits, and history reads — all through the bounded object reader. No git
 * index, no checkout: drover writes the working files itself. Trees are read through the hub's layout: an entry
 * that is not a regular file or folder where the layout wants one, or a blob over `maxFileBytes`, is left out
 * and reported to `onInvalid`, whoever committed it.
 */
import fs from "node:fs";
import git, { type TreeEntry } from "isomorphic-git";
import { DroverError } from "../core/errors.ts";
import type { Layout } from "./layout.ts";
import { createObjectStore } from "./objects.ts";

export type FileChanges = Map<string, string | null>;

export interface Change {
  path: string;
  before: string | null;
  after: string | null;
}

/** A tree entry that was left out, and why. */
export interface InvalidEntry {
  path: string;
  reason: string;
  oid: string;
}

export interface CommitInfo {
  oid: string;
  message: string;
  timestamp: number;
  parents: string[];
}

export interface HubRepo {
  dir: string;
  gitdir: string;
  branch: string;
  layout: Layout;
  head(): Promise<string | null>;
  /** Writes a commit on top of `parent` with the given changes (null = delete) and moves the branch (unless `detached`). */
  commit(
    changes: FileChanges,
    options: { parent: string | null; message: string; time: number; detached?: boolean },
  ): Promise<string>;
  /** Every valid file that differs between two commits (`from` null = the empty tree); entries left out of `to` go to `onInvalid`. */
  diff(from: string | null, to: string, options?: { onInvalid?: (entry: InvalidEntry) => void }): Promise<Change[]>;
  /** Every valid file of a commit, or of `prefix` within it. */
  files(oid: string, prefix?: string): Promise<Array<{ path: string; oid: string }>>;
  /** What the layout finds at `path` in a commit: the file's oid, an invalid entry's reason, or nothing. */
  entryAt(commit: string, path: string): Promise<{ oid: string } | { reason: string } | null>;
  /** A blob's text; null when it is over `maxFileBytes` (its size read from the object header). */
  readBlob(oid: string): Promise<string | null>;
  /**
   * Commits newest first, from the branch head or from `from`, along first parents; with `until`, stopping before
   * that commit.
   */
  log(options?: { from?: string; depth?: number; until?: string | null }): Promise<CommitInfo[]>;
  /** True when `ancestor` is `descendant` or one of its ancestors (through any parent; a very long history answers no). */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
  /** Moves the branch to a commit whose objects are already here (a fetched remote head). */
  setHead(oid: string): Promise<void>;
  /** Any ref of the hub's repository (`refs/drover/…`), null when absent. */
  readRef(ref: string): Promise<string | null>;
  /** Points a ref at a commit whose objects are here. */
  writeRef(ref: string, oid: string): Promise<void>;
}

export interface RepoOptions {
  layout: Layout;
  /** Blobs larger than this are never read (their size is taken from the object header). */
  maxFileBytes: number;
  /** Repack after this many batch packs (default 32). */
  repackAfter?: number;
  onRepackError?: (err: Error) => void;
}

/** How far back an ancestry question looks before it answers no. */
const ANCESTRY_LIMIT = 100_000;

export async function openRepo(dir: string, branch: string, options: RepoOptions): Promise<HubRepo> {
  const gitdir = `${dir}/.git`;
  if (!fs.existsSync(gitdir)) await git.init({ fs, dir, defaultBranch: branch });
  const ref = `refs/heads/${branch}`;
  const objects = createObjectStore(gitdir, options);
  const { layout } = options;

  const treeOf = (commit: string | null) => (commit ? objects.commitTree(commit) : null);
  const entries = (tree: string | null): TreeEntry[] => (tree ? objects.readTree(tree) : []);

  /** The entries of a tree the layout accepts; the others are reported when `onInvalid` is given. */
  function validEntries(
    tree: string | null,
    prefix: string,
    onInvalid?: (e: InvalidEntry) => void,
  ): Map<string, TreeEntry> {
    const out = new Map<string, TreeEntry>();
    for (const e of entries(tree)) {
      const path = prefix + e.path;
      const reason = layout.entryReason(path, e);
      if (reason) onInvalid?.({ path, reason, oid: e.oid });
      else out.set(e.path, e);
    }
    return out;
  }

  function writeTree(tree: string | null, changes: Map<string, string | null>): string | null {
    const own = new Map<string, string | null>();
    const nested = new Map<string, Map<string, string | null>>();
    for (const [path, content] of changes) {
      const slash = path.indexOf("/");
      if (slash < 0) own.set(path, content);
      else {
        const head = path.slice(0, slash);
        if (!nested.has(head)) nested.set(head, new Map());
        nested.get(head)!.set(path.slice(slash + 1), content);
      }
    }
    const result = new Map(entries(tree).map((e) => [e.path, e]));
    for (const [name, content] of own) {
      if (content === null) result.delete(name);
      else result.set(name, { mode: "100644", path: name, oid: objects.writeBlob(content), type: "blob" });
    }
    for (const [name, sub] of nested) {
      const current = result.get(name);
      const oid = writeTree(current?.type === "tree" ? current.oid : null, sub);
      if (oid) result.set(name, { mode: "040000", path: name, oid, type: "tree" });
      else result.delete(name);
    }
    if (!result.size) return null;
    return objects.writeTree([...result.values()]);
  }

  /** A blob's text, or null (reported) when it is over the size limit. */
  function blobText(path: string, oid: string, onInvalid?: (e: InvalidEntry) => void): string | null {
    try {
      return objects.readBlob(oid, options.maxFileBytes);
    } catch (err) {
      if (!(err instanceof DroverError) || err.code !== "too_large") throw err;
      onInvalid?.({
        path,
        reason: `the file is larger than hub.max_file_bytes (${(err.details as { size: number }).size} bytes)`,
        oid,
      });
      return null;
    }
  }

  function walkDiff(
    a: string | null,
    b: string | null,
    prefix: string,
    out: Change[],
    onInvalid?: (e: InvalidEntry) => void,
  ) {
    if (a === b) return;
    const left = validEntries(a, prefix);
    const right = validEntries(b, prefix, onInvalid);
    for (const name of new Set([...left.keys(), ...right.keys()])) {
      const l = left.get(name);
      const r = right.get(name);
      if (l?.oid === r?.oid) continue;
      const path = prefix + name;
      if (l?.type === "tree" || r?.type === "tree") {
        walkDiff(l?.type === "tree" ? l.oid : null, r?.type === "tree" ? r.oid : null, path + "/", out, onInvalid);
        continue;
      }
      const before = l ? blobText(path, l.oid) : null;
      const after = r ? blobText(path, r.oid, onInvalid) : null;
      if (before !== null || after !== null) out.push({ path, before, after });
    }
  }

  const repo: HubRepo = {
    dir,
    gitdir,
    branch,
    layout,
    head: () => repo.readRef(ref),
    async commit(changes, { parent, message, time, detached = false }) {
      const tree = writeTree(treeOf(parent), changes) ?? objects.writeTree([]);
      const oid = objects.writeCommit({ tree, parents: parent ? [parent] : [], message, time });
      await objects.flush();
      if (!detached) await repo.setHead(oid);
      return oid;
    },
    setHead: (oid) => repo.writeRef(ref, oid),
    async readRef(name) {
      try {
        return fs.readFileSync(`${gitdir}/${name}`, "utf8").trim();
      } catch {
        // packed by someone's `git gc`, or no commit yet
        return git.resolveRef({ fs, gitdir, ref: name }).catch(() => null);
      }
    },
    async writeRef(name, oid) {
      const file = `${gitdir}/${name}`;
      try {
        fs.writeFileSync(`${file}.lock`, oid + "\n");
      } catch {
        fs.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true }); // the ref's first commit
        fs.writeFileSync(`${file}.lock`, oid + "\n");
      }
      fs.renameSync(`${file}.lock`, file);
    },
    async diff(from, to, { onInvalid } = {}) {
      const out: Change[] = [];
      walkDiff(treeOf(from), treeOf(to), "", out, onInvalid);
      return out;
    },
    async files(oid, prefix = "") {
      const out: Array<{ path: string; oid: string }> = [];
      const base = prefix ? prefix.replace(/\/?$/, "/") : "";
      let tree = treeOf(oid);
      let at = "";
      for (const part of prefix.split("/").filter(Boolean)) {
        const entry = validEntries(tree, at).get(part);
        if (entry?.type !== "tree") return out;
        tree = entry.oid;
        at += part + "/";
      }
      const walk = (t: string, path: string) => {
        for (const e of validEntries(t, path).values()) {
          if (e.type === "tree") walk(e.oid, path + e.path + "/");
          else out.push({ path: path + e.path, oid: e.oid });
        }
      };
      if (tree) walk(tree, base);
      return out;
    },
    async entryAt(commit, path) {
      let tree: string | null = treeOf(commit);
      const parts = path.split("/");
      let at = "";
      for (const [i, part] of parts.entries()) {
        const entry = entries(tree).find((e) => e.path === part);
        if (!entry) return null;
        const reason = layout.entryReason(at + part, entry);
        if (reason) return { reason };
        if (i === parts.length - 1) return entry.type === "tree" ? null : { oid: entry.oid };
        tree = entry.oid;
        at += part + "/";
      }
      return null;
    },
    readBlob: async (oid) => blobText("", oid),
    async log({ from, depth = Infinity, until } = {}) {
      const out: CommitInfo[] = [];
      for (let oid = from ?? (await repo.head()); oid && oid !== until && out.length < depth; ) {
        const c = objects.readCommit(oid);
        out.push({ oid, message: c.message, timestamp: c.timestamp, parents: c.parents });
        oid = c.parents[0] ?? null;
      }
      return out;
    },
    async isAncestor(ancestor, descendant) {
      const seen = new Set<string>();
      const todo = [descendant];
      while (todo.length && seen.size < ANCESTRY_LIMIT) {
        const oid = todo.pop()!;
        if (oid === ancestor) return true;
        if (seen.has(oid)) continue;
        seen.add(oid);
        todo.push(...objects.readCommit(oid).parents);
      }
      return false;
    },
  };
  if (!(await repo.head())) await git.writeRef({ fs, gitdir, ref: "HEAD", value: ref, symbolic: true, force: true });
  return repo;
}

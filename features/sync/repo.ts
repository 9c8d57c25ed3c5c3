/**
 * @module The hub's git repository through isomorphic-git: commits built directly from trees (only the
 * subtrees that changed are rewritten), tree diffs between two commits, and history reads. No git index,
 * no checkout: drover writes the working files itself.
 */
import fs from "node:fs";
import git, { type TreeEntry } from "isomorphic-git";
import { createObjectStore } from "./objects.ts";

export type FileChanges = Map<string, string | null>;

export interface Change {
  path: string;
  before: string | null;
  after: string | null;
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
  head(): Promise<string | null>;
  /** Writes a commit on top of `parent` with the given changes (null = delete) and moves the branch (unless `detached`). */
  commit(changes: FileChanges, options: { parent: string | null; message: string; time: number; detached?: boolean }): Promise<string>;
  /** Every file that differs between two commits (`from` null = the empty tree). */
  diff(from: string | null, to: string): Promise<Change[]>;
  /** Every file of a commit, or of `prefix` within it. */
  files(oid: string, prefix?: string): Promise<Array<{ path: string; oid: string }>>;
  readBlob(oid: string): Promise<string>;
  /**
   * Commits newest first, from the branch head or from `from`; with `until`, along first parents and stopping
   * before that commit (the hub branch only ever moves forward, so that is every commit since it).
   */
  log(options?: { from?: string; depth?: number; until?: string | null }): Promise<CommitInfo[]>;
  /** Moves the branch to a commit whose objects are already here (a fetched remote head). */
  setHead(oid: string): Promise<void>;
}

export interface RepoOptions {
  /** Repack after this many batch packs (default 32). */
  repackAfter?: number;
  onRepackError?: (err: Error) => void;
}

export async function openRepo(dir: string, branch: string, options: RepoOptions = {}): Promise<HubRepo> {
  const gitdir = `${dir}/.git`;
  const cache = {};
  if (!fs.existsSync(gitdir)) await git.init({ fs, dir, defaultBranch: branch });
  const ref = `refs/heads/${branch}`;
  const objects = createObjectStore(gitdir, options);

  async function treeOf(commit: string | null): Promise<string | null> {
    return commit ? objects.commitTree(commit) : null;
  }

  async function entries(tree: string | null): Promise<TreeEntry[]> {
    return tree ? objects.readTree(tree) : [];
  }

  async function writeTree(tree: string | null, changes: Map<string, string | null>): Promise<string | null> {
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
    const result = new Map((await entries(tree)).map((e) => [e.path, e]));
    for (const [name, content] of own) {
      if (content === null) result.delete(name);
      else {
        result.set(name, { mode: "100644", path: name, oid: objects.writeBlob(content), type: "blob" });
      }
    }
    for (const [name, sub] of nested) {
      const current = result.get(name);
      const oid = await writeTree(current?.type === "tree" ? current.oid : null, sub);
      if (oid) result.set(name, { mode: "040000", path: name, oid, type: "tree" });
      else result.delete(name);
    }
    if (!result.size) return null;
    return objects.writeTree([...result.values()]);
  }

  async function walkDiff(a: string | null, b: string | null, prefix: string, out: Change[]) {
    if (a === b) return;
    const left = new Map((await entries(a)).map((e) => [e.path, e]));
    const right = new Map((await entries(b)).map((e) => [e.path, e]));
    for (const name of new Set([...left.keys(), ...right.keys()])) {
      const l = left.get(name);
      const r = right.get(name);
      if (l?.oid === r?.oid) continue;
      const path = prefix + name;
      const lTree = l?.type === "tree" ? l.oid : null;
      const rTree = r?.type === "tree" ? r.oid : null;
      if (lTree || rTree) await walkDiff(lTree, rTree, path + "/", out);
      const lBlob = l?.type === "blob" ? await repo.readBlob(l.oid) : null;
      const rBlob = r?.type === "blob" ? await repo.readBlob(r.oid) : null;
      if (lBlob !== null || rBlob !== null) out.push({ path, before: lBlob, after: rBlob });
    }
  }

  const repo: HubRepo = {
    dir,
    gitdir,
    branch,
    async head() {
      try {
        return await git.resolveRef({ fs, gitdir, ref });
      } catch {
        return null;
      }
    },
    async commit(changes, { parent, message, time, detached = false }) {
      const tree = (await writeTree(await treeOf(parent), changes)) ?? objects.writeTree([]);
      const oid = objects.writeCommit({ tree, parents: parent ? [parent] : [], message, time });
      await objects.flush();
      if (!detached) await repo.setHead(oid);
      return oid;
    },
    async setHead(oid) {
      const file = `${gitdir}/${ref}`;
      try {
        fs.writeFileSync(`${file}.lock`, oid + "\n");
      } catch {
        fs.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true }); // the branch's first commit
        fs.writeFileSync(`${file}.lock`, oid + "\n");
      }
      fs.renameSync(`${file}.lock`, file);
    },
    async diff(from, to) {
      const out: Change[] = [];
      await walkDiff(await treeOf(from), await treeOf(to), "", out);
      return out;
    },
    async files(oid, prefix = "") {
      const out: Array<{ path: string; oid: string }> = [];
      let tree = await treeOf(oid);
      for (const part of prefix.split("/").filter(Boolean)) {
        const entry = (await entries(tree)).find((e) => e.path === part && e.type === "tree");
        if (!entry) return out;
        tree = entry.oid;
      }
      async function walk(t: string | null, base: string) {
        for (const e of await entries(t)) {
          if (e.type === "tree") await walk(e.oid, base + e.path + "/");
          else if (e.type === "blob") out.push({ path: base + e.path, oid: e.oid });
        }
      }
      await walk(tree, prefix ? prefix.replace(/\/?$/, "/") : "");
      return out;
    },
    readBlob: (oid) => objects.readBlob(oid),
    async log({ from, depth, until } = {}) {
      if (!from && !(await repo.head())) return [];
      const info = (oid: string, c: { message: string; committer: { timestamp: number }; parent: string[] }) => ({ oid, message: c.message, timestamp: c.committer.timestamp, parents: c.parent });
      if (until === undefined) return (await git.log({ fs, gitdir, ref: from ?? ref, depth, cache })).map((c) => info(c.oid, c.commit));
      // read one commit at a time: git.log reads all `depth` commits before the caller could stop
      const out: CommitInfo[] = [];
      for (let oid = from ?? (await repo.head()); oid && oid !== until && out.length < (depth ?? Infinity); ) {
        const { commit } = await git.readCommit({ fs, gitdir, oid, cache });
        out.push(info(oid, commit));
        oid = commit.parent[0];
      }
      return out;
    },
  };
  if (!(await repo.head())) await git.writeRef({ fs, gitdir, ref: "HEAD", value: ref, symbolic: true, force: true });
  return repo;
}

/**
 * @module Carrying the hub branch to and from a remote: isomorphic-git for `http(s)://` (it speaks nothing
 * else), the system `git` for `ssh://`, `user@host:path`, `file://` and plain paths. Both give the same two
 * moves: fetch the branch, and push a commit only if the remote branch is still what we last saw (the
 * compare-and-swap every claim relies on).
 */
import fs from "node:fs";
import git from "isomorphic-git";
import http from "isomorphic-git/http/web";
import type { HttpClient } from "isomorphic-git";
import { DroverError } from "../../core/errors.ts";
import { git as gitCli, gitAsync } from "../../core/git.ts";

export interface Transport {
  /** Brings the remote branch's objects here; answers its head, or null when the remote has no such branch. */
  fetch(): Promise<string | null>;
  /** Moves the remote branch to `oid` if it still is `expected` (null: absent); false when it was not. */
  push(oid: string, expected: string | null): Promise<boolean>;
}

export interface TransportOptions {
  gitdir: string;
  url: string;
  branch: string;
  /** Sent as the HTTP password (user `x-access-token` unless the URL names one). */
  token?: string;
  /**
   * Each fetch or push (each HTTP request, for isomorphic-git) gives up after this long: a remote that takes
   * packets and never answers must not hold a round — or, for a push, the hub lock — for ever.
   */
  timeoutMs: number;
}

/** The transport a remote URL needs. */
export function createTransport(options: TransportOptions): Transport {
  return /^https?:\/\//i.test(options.url) ? _isoTransport(options) : _gitTransport(options);
}

/**
 * The URL of `remote` for the project at `root`: a URL or path is used as given, anything else is the name
 * of one of the project's git remotes.
 */
export function resolveRemoteUrl(root: string, remote: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || /^[^/\s]+@[^/\s]+:/.test(remote) || /^(\/|\.{1,2}\/)/.test(remote)) return remote;
  const { ok, out: url } = gitCli(root, ["config", "--get", `remote.${remote}.url`]);
  if (!ok || !url) throw new DroverError("offline", `Cannot sync: the project has no git remote "${remote}"`);
  return url;
}

// --- internal ---

const OUTGOING = "refs/drover/outgoing";
const TRACKING = "refs/drover/remote";


function _isoTransport({ gitdir, url, branch, token, timeoutMs }: TransportOptions): Transport {
  const auth = () => {
    const named = new URL(url).username;
    return token ? { username: named || "x-access-token", password: token } : {};
  };
  // isomorphic-git records what it fetched under a named remote, and wants that remote's refspec in config
  let configured: Promise<void> | null = null;
  const configure = () =>
    (configured ??= (async () => {
      await git.setConfig({ fs, gitdir, path: "remote.hub.url", value: _redact(url) });
      await git.setConfig({ fs, gitdir, path: "remote.hub.fetch", value: `+refs/heads/${branch}:${TRACKING}` });
    })());
  // without a cache isomorphic-git reads every pack index again for each object it looks at; one cache per
  // round (not longer: a repack between rounds deletes packs a longer-lived cache would still point at)
  let cache = {};
  const client = _client(branch, timeoutMs);
  return {
    async fetch() {
      await configure();
      cache = {};
      try {
        // `ref` is also the one "have" isomorphic-git offers: our last fetched remote head is one the remote
        // knows (our own branch head carries unpushed commits, and offering it would fetch the whole history)
        const res = await git.fetch({
          ...{ fs, cache, http: client, gitdir, url, remote: "hub", onAuth: auth },
          ...{ ref: TRACKING, remoteRef: `refs/heads/${branch}`, singleBranch: true, tags: false },
        });
        return res.fetchHead;
      } catch (err) {
        if ((err as { code?: string }).code === "NotFoundError") return null; // the remote has refs, but not ours
        throw _offline(url, err);
      }
    },
    // the expected head needs no saying here: our commit's parent is that head, so the push is a fast-forward
    // only while the remote still is it, and receive-pack updates the ref only from the old id it advertised
    async push(oid) {
      await git.writeRef({ fs, gitdir, ref: OUTGOING, value: oid, force: true });
      try {
        const res = await git.push({ fs, cache, http: client, gitdir, url, ref: OUTGOING, remoteRef: `refs/heads/${branch}`, onAuth: auth });
        if (res.ok) return true;
        throw new Error(res.error ?? "push refused");
      } catch (err) {
        const code = (err as { code?: string }).code;
        // the remote moved since our fetch: its head is unknown here (NotFound) or not our ancestor (rejected)
        if (code === "PushRejectedError" || code === "NotFoundError" || code === "GitPushError") return false;
        if (code === undefined && /stale|fetch first|non-fast-forward/i.test(String(err))) return false; // refused by the server
        throw _offline(url, err);
      }
    },
  };
}

/**
 * isomorphic-git's HTTP client with a time limit on every request, and one repair: its fetch insists that the
 * remote advertise `HEAD`, and a bare remote whose HEAD names a branch that does not exist (a fresh `git init
 * --bare` holding only drover/hub) advertises none. Such an advertisement gets a `HEAD` line naming our branch.
 */
function _client(branch: string, timeoutMs: number): HttpClient {
  return {
    async request(req) {
      const res = await http.request({ ...req, signal: req.signal ?? AbortSignal.timeout(timeoutMs) });
      if (req.method !== "GET" || !req.url.includes("/info/refs?service=git-upload-pack") || res.statusCode !== 200 || !res.body) return res;
      const chunks: Uint8Array[] = [];
      for await (const chunk of res.body) chunks.push(chunk);
      const body = Buffer.concat(chunks);
      const lines: string[] = [];
      for (let p = 0; p + 4 <= body.length; ) {
        const len = Number.parseInt(body.toString("latin1", p, p + 4), 16);
        lines.push(len === 0 ? "" : body.toString("latin1", p + 4, p + len));
        p += len === 0 ? 4 : len;
      }
      const refs = lines.slice(2, -1);
      const ours = refs.map((l) => l.split("\0")[0]!).find((l) => l.endsWith(` refs/heads/${branch}`));
      if (refs.some((l) => l.split("\0")[0]!.endsWith(" HEAD")) || !ours) return { ...res, body: _once(body) };
      lines.splice(3, 0, `${ours.slice(0, 40)} HEAD\n`);
      const out = lines.map((l) => (l === "" ? "0000" : (l.length + 4).toString(16).padStart(4, "0") + l)).join("");
      return { ...res, body: _once(Buffer.from(out, "latin1")) };
    },
  };
}

async function* _once(chunk: Uint8Array): AsyncIterableIterator<Uint8Array> {
  yield chunk;
}

function _gitTransport({ gitdir, url, branch, timeoutMs }: TransportOptions): Transport {
  const cwd = gitdir;
  return {
    async fetch() {
      const args = ["-c", "gc.auto=0", "--git-dir", gitdir, "fetch", "-q", "--no-tags", "--no-write-fetch-head", url, `+refs/heads/${branch}:${TRACKING}`];
      const out = await gitAsync(cwd, args, { timeoutMs });
      if (out.code !== 0) {
        if (/couldn't find remote ref/i.test(out.stderr)) return null;
        throw _offline(url, out.stderr);
      }
      const head = gitCli(cwd, ["--git-dir", gitdir, "rev-parse", "--verify", "-q", TRACKING]);
      return (head.ok && head.out) || null;
    },
    async push(oid, expected) {
      const lease = `--force-with-lease=refs/heads/${branch}:${expected ?? ""}`;
      const out = await gitAsync(cwd, ["--git-dir", gitdir, "push", "--porcelain", "-q", lease, url, `${oid}:refs/heads/${branch}`], { timeoutMs });
      if (out.code === 0) return true;
      if (/^!/m.test(out.stdout)) return false; // rejected: stale info, or the remote moved
      throw _offline(url, out.stderr || out.stdout);
    },
  };
}

function _offline(url: string, err: unknown): DroverError {
  const detail = (err instanceof Error ? err.message : String(err)).trim().split("\n").at(-1) ?? "";
  return new DroverError("offline", `Cannot reach the hub remote "${_redact(url)}": ${detail}`, { cause: err });
}

/** The URL without its password or token. */
function _redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//");
}

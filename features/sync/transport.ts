/**
 * @module Carrying the hub branch to and from a remote: isomorphic-git for `http(s)://` (it speaks nothing
 * else), the system `git` for `ssh://`, `user@host:path`, `file://` and plain paths. Both give the same two
 * moves: fetch the branch, and push a commit only if the remote branch is still what we last saw (the
 * compare-and-swap every claim relies on).
 */
import fs from "node:fs";
import git from "isomorphic-git";
import { DroverError } from "../../core/errors.ts";
import { gitAsync, git as gitCli } from "../../core/git.ts";
import { createObjectReader } from "../../hub/packs.ts";
import { PRESENCE_BRANCHES, PRESENCE_TRACKING, presenceName } from "../../hub/presence.ts";
import { createHubHttp } from "./http.ts";
import { pushOverHttp, replaceRefOverHttp } from "./push.ts";

/** What a fetch brings: the hub branch's head, and every machine's last confirmed head, objects included. */
export interface Fetched {
  /** Null when the remote has no such branch. */
  head: string | null;
  /** `refs/drover/confirmed/<machine>` of every machine that ever pushed: the newest tells a rewound branch. */
  confirmed: string[];
  /** Every machine's presence commit (`drover/presence/<machine>`, this one's included), objects fetched. */
  presence: Map<string, string>;
}

export interface Transport {
  fetch(): Promise<Fetched>;
  /**
   * Moves the remote branch to `oid` if it still is `expected` (null: absent) — a compare-and-swap; false when it
   * was not. Sync's commits descend from `expected`, so that is a fast-forward; `sync restore` moves it back. This
   * machine's `refs/drover/confirmed/<machine>` moves to `oid` in the same atomic update. With `seen`, the push is
   * also refused (false) when another machine's confirmed head on the remote is one it does not build on: the
   * branch was rewound to `expected` after that machine pushed, and pushing now would fork the history.
   */
  push(
    oid: string,
    expected: string | null,
    options?: { seen?: (confirmed: string) => Promise<boolean> },
  ): Promise<boolean>;
  /**
   * Points this machine's presence ref at `oid`, replacing what it held (`expected`, from the last fetch; only this
   * machine writes it). False when it held something else (an older process of this machine pushed meanwhile).
   */
  pushPresence(oid: string, expected: string | null): Promise<boolean>;
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
  /** Fetched blobs over this size are streamed to disk by git, never held whole (they are not read later either). */
  maxFileBytes: number;
  /** Names this machine's confirmed-head ref on the remote. */
  machineId: string;
}

/** The remote ref where a machine's pushes record the last head it confirmed. */
export function confirmedRef(machineId: string): string {
  return `${CONFIRMED}${machineId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** The transport a remote URL needs. */
export function createTransport(options: TransportOptions): Transport {
  return /^https?:\/\//i.test(options.url) ? _isoTransport(options) : _gitTransport(options);
}

/** A plain git remote name (`origin`): this machine's own git config says where it points. */
export function isRemoteName(remote: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(remote);
}

/** True when `hub.remote` is a URL or a path rather than the name of one of the project's git remotes. */
function _isLocation(remote: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || /^[^/\s]+@[^/\s]+:/.test(remote) || /^(\/|\.{1,2}\/)/.test(remote);
}

/**
 * The URL of `remote` for the project at `root`: a URL or path is used as given, anything else is the name of one
 * of the project's git remotes, resolved by this machine's own git config. Nothing that would reach git's command
 * line as an option (a leading `-`) or is not a plain remote name gets through.
 */
export function resolveRemoteUrl(root: string, remote: string): string {
  if (remote.startsWith("-")) throw new DroverError("bad_config", `Invalid "hub.remote": "${remote}" starts with "-"`);
  if (_isLocation(remote)) return remote;
  if (!isRemoteName(remote))
    throw new DroverError("bad_config", `Invalid "hub.remote": "${remote}" is neither a remote name nor a URL or path`);
  const { ok, out: url } = gitCli(root, ["config", "--get", `remote.${remote}.url`]);
  if (!ok || !url) throw new DroverError("offline", `Cannot sync: the project has no git remote "${remote}"`);
  if (url.startsWith("-"))
    throw new DroverError("bad_config", `Invalid URL of git remote "${remote}": "${url}" starts with "-"`);
  return url;
}

// --- internal ---

const TRACKING = "refs/drover/remote";
const CONFIRMED = "refs/drover/confirmed/";
const PEERS = "refs/drover/peers/";

function _isoTransport({
  gitdir,
  url,
  branch,
  token,
  timeoutMs,
  maxFileBytes,
  machineId,
}: TransportOptions): Transport {
  const auth = () => {
    const { username, password } = new URL(url);
    if (token) return { username: decodeURIComponent(username) || "x-access-token", password: token };
    return username ? { username: decodeURIComponent(username), password: decodeURIComponent(password) } : {};
  };
  const authorization = () => {
    const { username, password } = auth();
    return username === undefined
      ? undefined
      : `Basic ${Buffer.from(`${username}:${password ?? ""}`).toString("base64")}`;
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
  let advertised = new Map<string, string>();
  const client = createHubHttp({ gitdir, branch, url, timeoutMs, maxFileBytes, onRefs: (refs) => (advertised = refs) });
  const reader = createObjectReader(gitdir);
  // `ref` is also the one "have" isomorphic-git offers: our last fetched remote head is one the remote knows (our
  // own branch head carries unpushed commits, and offering it would fetch the whole history)
  const fetchRef = (ref: string, remoteRef: string) =>
    git.fetch({
      ...{ fs, cache, http: client, gitdir, url, remote: "hub", onAuth: auth },
      ...{ ref, remoteRef, singleBranch: true, tags: false },
    });
  return {
    async fetch() {
      await configure();
      cache = {};
      let head: string | null = null;
      try {
        head = (await fetchRef(TRACKING, `refs/heads/${branch}`)).fetchHead;
      } catch (err) {
        // the remote has refs, but not our branch (deleted: the machines' confirmed heads tell what it held)
        if ((err as { code?: string }).code !== "NotFoundError") throw _offline(url, err);
      }
      const confirmed: string[] = [];
      for (const [ref, oid] of advertised) {
        if (!ref.startsWith(CONFIRMED)) continue;
        // usually the branch's own history; fetched only when it is not (the branch was rewound)
        if (!reader.has(oid))
          await fetchRef(PEERS + ref.slice(CONFIRMED.length), ref).catch((err) => Promise.reject(_offline(url, err)));
        confirmed.push(oid);
      }
      const presence = new Map<string, string>();
      for (const [ref, oid] of advertised) {
        const name = ref.slice(PRESENCE_BRANCHES.length);
        if (!ref.startsWith(PRESENCE_BRANCHES) || presenceName(name) !== name) continue;
        // a machine's presence changes about once a minute: fetched only then
        if (!reader.has(oid))
          await fetchRef(PRESENCE_TRACKING + name, ref).catch((err) => Promise.reject(_offline(url, err)));
        presence.set(name, oid);
      }
      return { head, confirmed, presence };
    },
    async push(oid, expected, { seen } = {}) {
      try {
        return await pushOverHttp(
          { gitdir, url, branch, timeoutMs, authorization: authorization(), confirmedRef: confirmedRef(machineId) },
          { oid, expected, seen },
        );
      } catch (err) {
        if (err instanceof DroverError && err.code !== "offline" && err.code !== "internal") throw err;
        throw _offline(url, err);
      }
    },
    async pushPresence(oid, expected) {
      const ref = PRESENCE_BRANCHES + presenceName(machineId);
      try {
        return await replaceRefOverHttp(
          { gitdir, url, timeoutMs, authorization: authorization() },
          { ref, oid, expected },
        );
      } catch (err) {
        if (err instanceof DroverError && err.code !== "offline" && err.code !== "internal") throw err;
        throw _offline(url, err);
      }
    },
  };
}

function _gitTransport({ gitdir, url, branch, timeoutMs, maxFileBytes, machineId }: TransportOptions): Transport {
  const cwd = gitdir;
  // blobs over the limit are streamed by index-pack and unpack-objects, never held whole
  const config = ["-c", "gc.auto=0", "-c", `core.bigFileThreshold=${maxFileBytes}`, "-c", "protocol.ext.allow=never"];
  const fetchRefs = (refspecs: string[]) =>
    gitAsync(
      cwd,
      [
        ...config,
        "--git-dir",
        gitdir,
        "fetch",
        "-q",
        "--prune",
        "--no-tags",
        "--no-write-fetch-head",
        "--end-of-options",
        url,
        ...refspecs,
      ],
      { timeoutMs },
    );
  return {
    async fetch() {
      const others = [`+${CONFIRMED}*:${PEERS}*`, `+${PRESENCE_BRANCHES}*:${PRESENCE_TRACKING}*`];
      let out = await fetchRefs([`+refs/heads/${branch}:${TRACKING}`, ...others]);
      let gone = false;
      if (out.code !== 0 && /couldn't find remote ref/i.test(out.stderr)) {
        gone = true; // the branch was deleted: the machines' confirmed heads tell what it held
        out = await fetchRefs(others);
      }
      if (out.code !== 0) throw _offline(url, out.stderr);
      const listed = gitCli(cwd, [
        ...["--git-dir", gitdir, "for-each-ref", "--format=%(objectname) %(refname)"],
        ...[TRACKING, PEERS, PRESENCE_TRACKING],
      ]);
      const fetched: Fetched = { head: null, confirmed: [], presence: new Map() };
      for (const line of listed.ok ? listed.out.split("\n") : []) {
        const [oid, ref] = line.split(" ") as [string, string | undefined];
        if (ref === TRACKING) fetched.head = gone ? null : oid;
        else if (ref?.startsWith(PEERS)) fetched.confirmed.push(oid);
        else if (ref?.startsWith(PRESENCE_TRACKING)) fetched.presence.set(ref.slice(PRESENCE_TRACKING.length), oid);
      }
      return fetched;
    },
    async push(oid, expected, { seen } = {}) {
      if (seen) {
        const listed = await gitAsync(
          cwd,
          ["--git-dir", gitdir, "ls-remote", "--end-of-options", url, `${CONFIRMED}*`],
          { timeoutMs },
        );
        if (listed.code !== 0) throw _offline(url, listed.stderr);
        for (const line of listed.stdout.split("\n").filter(Boolean)) {
          const [confirmed, ref] = line.split("\t") as [string, string];
          if (ref !== confirmedRef(machineId) && !(await seen(confirmed))) return false;
        }
      }
      const lease = `--force-with-lease=refs/heads/${branch}:${expected ?? ""}`;
      const refspecs = [`${oid}:refs/heads/${branch}`, `+${oid}:${confirmedRef(machineId)}`];
      const args = [
        "-c",
        "protocol.ext.allow=never",
        "--git-dir",
        gitdir,
        "push",
        "--atomic",
        "--porcelain",
        "-q",
        lease,
        "--end-of-options",
        url,
        ...refspecs,
      ];
      const out = await gitAsync(cwd, args, { timeoutMs });
      if (out.code === 0) return true;
      if (/^!/m.test(out.stdout)) return false; // rejected: stale info, or the remote moved
      throw _offline(url, out.stderr || out.stdout);
    },
    async pushPresence(oid, expected) {
      const ref = PRESENCE_BRANCHES + presenceName(machineId);
      const args = [
        ...["-c", "protocol.ext.allow=never", "--git-dir", gitdir, "push", "--porcelain", "-q"],
        `--force-with-lease=${ref}:${expected ?? ""}`,
        ...["--end-of-options", url, `+${oid}:${ref}`],
      ];
      const out = await gitAsync(cwd, args, { timeoutMs });
      if (out.code === 0) return true;
      if (/^!.*stale info/m.test(out.stdout)) return false;
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

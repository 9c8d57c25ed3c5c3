/**
 * @module Pushing the hub branch to an `http(s)://` remote: a compare-and-swap of one ref over smart HTTP, with a
 * pack of just the objects the remote lacks from `git pack-objects`. isomorphic-git's push walks every tree of the
 * commit and of the remote's head and refuses names such as `.git` anywhere — one hostile commit on the remote
 * would stop every machine's pushes — so drover speaks receive-pack itself. The remote's ref moves only if it still
 * is `expected` (receive-pack checks the old id under its lock); a forced push (`sync restore`) is the same
 * compare-and-swap without the fast-forward rule.
 */
import { spawn } from "node:child_process";
import { DroverError } from "../../core/errors.ts";
import { advertisedRefs, FLUSH, packets, pktLine, ZERO_ID } from "./pkt.ts";

export interface HttpPushOptions {
  gitdir: string;
  url: string;
  branch: string;
  timeoutMs: number;
  /** The Authorization header value, or none. */
  authorization?: string;
  /** This machine's confirmed-head ref, moved to the pushed commit in the same atomic update. */
  confirmedRef: string;
}

/** Reasons receive-pack gives when the ref was not what we expected: someone else pushed first. */
const LOST_RACE =
  /stale|fetch first|non-fast-forward|failed to lock|cannot lock|failed to update|already exists|changed/i;

/**
 * Moves the remote branch from `expected` to `oid`; false when the remote was no longer at `expected`, or (with
 * `seen`) holds another machine's confirmed head this push does not build on (a rewind since our fetch).
 */
export async function pushOverHttp(
  options: HttpPushOptions,
  move: { oid: string; expected: string | null; seen?: (confirmed: string) => Promise<boolean> },
): Promise<boolean> {
  const advertised = await _advertised(options);
  if (_advertisedRef(advertised, `refs/heads/${options.branch}`) !== (move.expected ?? null)) return false; // moved since our fetch
  if (move.seen) {
    for (const [ref, confirmed] of advertisedRefs(packets(advertised))) {
      if (ref.startsWith("refs/drover/confirmed/") && ref !== options.confirmedRef && !(await move.seen(confirmed)))
        return false;
    }
  }
  const pack = await _packObjects(options.gitdir, move.oid, move.expected);
  const atomic = _capabilities(advertised).includes("atomic");
  const branch = `${move.expected ?? ZERO_ID} ${move.oid} refs/heads/${options.branch}`;
  const confirmed = `${_advertisedRef(advertised, options.confirmedRef) ?? ZERO_ID} ${move.oid} ${options.confirmedRef}`;
  const ref = `refs/heads/${options.branch}`;
  const reason = await _receive(options, { commands: [branch, confirmed], atomic, pack, ref });
  if (reason === null) return true;
  if (LOST_RACE.test(reason)) return false;
  if (/atomic transaction failed/.test(reason)) {
    // atomic: git names no culprit. The branch moved (the usual race), or the server refuses our confirmed-head
    // ref: then the branch goes alone, and a rewind is told by the machines' own confirmed heads only
    if (_advertisedRef(await _advertised(options), `refs/heads/${options.branch}`) !== (move.expected ?? null))
      return false;
    const alone = await _receive(options, { commands: [branch], atomic: false, pack, ref });
    if (alone === null) return true;
    if (LOST_RACE.test(alone)) return false;
    throw new DroverError("offline", `Cannot push to the hub remote: it refused the update (${alone})`);
  }
  throw new DroverError("offline", `Cannot push to the hub remote: it refused the update (${reason})`);
}

/**
 * Points `ref` at `oid` if it still is `expected`, fast-forward or not (a presence ref, which only this machine
 * writes); false when it held something else.
 */
export async function replaceRefOverHttp(
  options: Omit<HttpPushOptions, "branch" | "confirmedRef">,
  move: { ref: string; oid: string; expected: string | null },
): Promise<boolean> {
  const pack = await _packObjects(options.gitdir, move.oid, null);
  const command = `${move.expected ?? ZERO_ID} ${move.oid} ${move.ref}`;
  const reason = await _receive(options, { commands: [command], atomic: false, pack, ref: move.ref });
  if (reason === null) return true;
  if (LOST_RACE.test(reason)) return false;
  throw new DroverError("offline", `Cannot push to the hub remote: it refused "${move.ref}" (${reason})`);
}

// --- internal ---

type _Remote = Pick<HttpPushOptions, "url" | "timeoutMs" | "authorization">;

async function _advertised(options: HttpPushOptions): Promise<Buffer> {
  const res = await _request(
    `${_plainUrl(options.url)}/info/refs?service=git-receive-pack`,
    { headers: _auth(options) },
    options,
  );
  return Buffer.from(await res.arrayBuffer());
}

function _auth(options: _Remote): Record<string, string> {
  return options.authorization ? { authorization: options.authorization } : {};
}

/** One receive-pack request; null when `ref` moved, else receive-pack's reason for not moving it. */
async function _receive(
  options: _Remote,
  request: { commands: string[]; atomic: boolean; pack: Buffer; ref: string },
): Promise<string | null> {
  const [first, ...rest] = request.commands;
  const lines = [
    `${first}\0report-status${request.atomic ? " atomic" : ""} agent=drover\n`,
    ...rest.map((c) => c + "\n"),
  ];
  const res = await _request(
    `${_plainUrl(options.url)}/git-receive-pack`,
    {
      method: "POST",
      headers: {
        ..._auth(options),
        "content-type": "application/x-git-receive-pack-request",
        accept: "application/x-git-receive-pack-result",
      },
      body: Buffer.concat([...lines.map((l) => pktLine(l)), Buffer.from(FLUSH), request.pack]),
    },
    options,
  );
  const report = _texts(Buffer.from(await res.arrayBuffer()));
  const unpack = report.find((l) => l.startsWith("unpack "));
  if (unpack !== "unpack ok")
    throw new DroverError(
      "offline",
      `Cannot push to the hub remote: it could not unpack our objects (${unpack ?? "no report"})`,
    );
  const [status, , ...why] =
    report.map((l) => l.split(" ")).find(([s, ref]) => (s === "ok" || s === "ng") && ref === request.ref) ?? [];
  return status === "ok" ? null : status ? why.join(" ") : "no report";
}

/** The URL without credentials (they go in the Authorization header) and without a trailing slash. */
function _plainUrl(url: string): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.href.replace(/\/+$/, "");
}

async function _request(url: string, init: RequestInit, options: _Remote): Promise<Response> {
  // no redirect is followed: the credential and the push go to the remote's own address only
  const res = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(options.timeoutMs) });
  if (res.status >= 300 && res.status < 400)
    throw new DroverError(
      "forbidden",
      `Cannot push to the hub remote: it redirects to "${res.headers.get("location")}"`,
    );
  if (!res.ok) throw new DroverError("offline", `Cannot push to the hub remote: HTTP ${res.status}`);
  return res;
}

/** The text of every packet (side band 1 unwrapped when the server used it; progress and flushes left out). */
function _texts(data: Buffer): string[] {
  return packets(data).flatMap((line) => {
    if (!line || line[0] === 2 || line[0] === 3) return [];
    return line[0] === 1 ? _texts(line.subarray(1)) : [line.toString("utf8").replace(/\n$/, "")];
  });
}

/** The capabilities on the first advertised ref's line. */
function _capabilities(data: Buffer): string[] {
  const first = _texts(data).find((l) => l.includes("\0"));
  return first ? first.split("\0")[1]!.split(" ") : [];
}

function _advertisedRef(data: Buffer, ref: string): string | null {
  return advertisedRefs(packets(data)).get(ref) ?? null;
}

/** A thin pack of the objects `oid` has and `expected` lacks, made by git itself (any tree, any name). */
function _packObjects(gitdir: string, oid: string, expected: string | null): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", ["--git-dir", gitdir, "pack-objects", "--stdout", "--revs", "--thin", "-q"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(Buffer.concat(chunks))
        : reject(
            new DroverError(
              "internal",
              `Cannot pack the hub's objects: git pack-objects exited with ${code}: ${stderr.trim()}`,
            ),
          ),
    );
    child.stdin.end(expected ? `${oid}\n^${expected}\n` : `${oid}\n`);
  });
}

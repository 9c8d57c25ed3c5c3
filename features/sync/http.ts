/**
 * @module isomorphic-git's HTTP client, as the hub remote needs it: every request has a time limit; a redirect is
 * followed only within the remote's own origin (the credential never travels elsewhere); a ref advertisement that
 * lacks `HEAD` gets one; and the packfile of a fetch goes straight into `git index-pack` instead of isomorphic-git's
 * in-memory indexer, which inflates every object whole — a remote's 2 MB blob bomb would otherwise become
 * gigabytes in this process. index-pack streams objects over `hub.max_file_bytes` without holding them.
 */
import { spawn } from "node:child_process";
import type { GitHttpRequest, GitHttpResponse, HttpClient } from "isomorphic-git";
import http from "isomorphic-git/http/web";
import { DroverError } from "../../core/errors.ts";
import { advertisedRefs, FLUSH, packets, pktLine, readPacket } from "./pkt.ts";

export interface HubHttpOptions {
  /** The hub repository, where fetched packs are indexed. */
  gitdir: string;
  branch: string;
  /** The remote's URL: requests and redirects stay within its origin. */
  url: string;
  timeoutMs: number;
  maxFileBytes: number;
  /** Told every ref the remote advertises to a fetch (name → oid). */
  onRefs?: (refs: Map<string, string>) => void;
}

/** A pack larger than this is refused by index-pack: no hub comes near it. */
const MAX_PACK_BYTES = 1024 * 1024 * 1024;
const REDIRECTS = 5;
/** The empty packfile isomorphic-git receives in place of the real one (it skips indexing an empty pack). */
const EMPTY_PACK = _emptyPack();

export function createHubHttp(options: HubHttpOptions): HttpClient {
  const origin = new URL(options.url).origin;
  return {
    async request(req) {
      const res = await _send(req, origin, options.timeoutMs);
      if (res.statusCode !== 200 || !res.body) return res;
      if (req.method === "GET" && req.url.includes("/info/refs?service=git-upload-pack")) {
        return { ...res, body: _once(_advertisement(await _collect(res.body), options)) };
      }
      if (req.method === "POST" && req.url.endsWith("/git-upload-pack"))
        return { ...res, body: _once(await _indexPack(res.body, options)) };
      return res;
    },
  };
}

// --- internal ---

async function _send(req: GitHttpRequest, origin: string, timeoutMs: number): Promise<GitHttpResponse> {
  const body = req.body ? await _collect(req.body) : undefined;
  let url = req.url;
  for (let hop = 0; ; hop++) {
    const res = await http.request({
      ...req,
      url,
      body: body && _once(body),
      signal: req.signal ?? AbortSignal.timeout(timeoutMs),
      fetchOptions: { redirect: "manual" },
    });
    const location = res.statusCode >= 300 && res.statusCode < 400 ? res.headers?.location : undefined;
    if (!location) return res;
    const next = new URL(location, url);
    if (next.origin !== origin)
      throw new DroverError(
        "forbidden",
        `Cannot follow the hub remote's redirect to "${next.origin}": it is another origin than "${origin}"`,
      );
    if (hop >= REDIRECTS)
      throw new DroverError("offline", `Cannot reach the hub remote: more than ${REDIRECTS} redirects`);
    url = next.href;
  }
}

function _emptyPack(): Buffer {
  const header = Buffer.from("5041434b0000000200000000", "hex");
  return Buffer.concat([header, new Bun.CryptoHasher("sha1").update(header).digest()]);
}

async function _collect(body: AsyncIterableIterator<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* _once(chunk: Uint8Array): AsyncIterableIterator<Uint8Array> {
  yield chunk;
}

/**
 * A ref advertisement, told to `onRefs`. isomorphic-git's fetch insists that the remote advertise `HEAD`, and a bare
 * remote whose HEAD names a branch that does not exist (a fresh `git init --bare` holding only drover/hub)
 * advertises none: such an advertisement gets a `HEAD` line naming our branch.
 */
function _advertisement(body: Buffer, options: HubHttpOptions): Buffer {
  let lines: Array<Buffer | null>;
  try {
    lines = packets(body);
  } catch {
    return body; // not pkt-lines: isomorphic-git will say so
  }
  const refs = advertisedRefs(lines);
  options.onRefs?.(refs);
  const ours = refs.get(`refs/heads/${options.branch}`);
  if (refs.has("HEAD") || !ours) return body;
  // after the service line, its flush and the first ref (which carries the capabilities)
  lines.splice(3, 0, Buffer.from(`${ours} HEAD\n`));
  return Buffer.concat(lines.map((l) => (l === null ? Buffer.from(FLUSH) : pktLine(l))));
}

/**
 * Reads an upload-pack answer: its pack data (side band 1) is piped into `git index-pack`, everything else is kept;
 * returns the answer isomorphic-git gets, with the empty pack in its side band 1.
 */
async function _indexPack(body: AsyncIterableIterator<Uint8Array>, options: HubHttpOptions): Promise<Buffer> {
  const kept: Buffer[] = [];
  const indexer = _packSink(options);
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk);
    let at = 0;
    for (let p = readPacket(pending, at); p; at = p.next, p = readPacket(pending, at)) {
      if (p.payload === null) kept.push(Buffer.from(FLUSH));
      else if (p.payload[0] === 1) await indexer.write(p.payload.subarray(1));
      else kept.push(pktLine(p.payload));
    }
    pending = pending.subarray(at);
  }
  await indexer.end();
  const empty = pktLine(Buffer.concat([Buffer.from([1]), EMPTY_PACK]));
  const flush = kept.length && kept.at(-1)!.toString() === FLUSH ? [kept.pop()!] : [];
  return Buffer.concat([...kept, empty, ...flush]);
}

/** Pack bytes into `git index-pack`, started once the pack's header shows it holds any object. */
function _packSink(options: HubHttpOptions) {
  let head = Buffer.alloc(0);
  let child: ReturnType<typeof spawn> | null = null;
  let exited: Promise<number> = Promise.resolve(0);
  let stderr = "";
  function start() {
    child = spawn(
      "git",
      [
        "-c",
        `core.bigFileThreshold=${options.maxFileBytes}`,
        "--git-dir",
        options.gitdir,
        "index-pack",
        "--stdin",
        "--fix-thin",
        `--max-input-size=${MAX_PACK_BYTES}`,
      ],
      {
        stdio: ["pipe", "ignore", "pipe"],
      },
    );
    child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
    child.stdin!.on("error", () => undefined); // index-pack gave up: its exit code says why
    exited = new Promise((resolve) => {
      child!.on("error", () => resolve(127));
      child!.on("close", (code) => resolve(code ?? 1));
    });
  }
  async function send(data: Buffer) {
    if (!child!.stdin!.write(data)) await new Promise((resolve) => child!.stdin!.once("drain", resolve));
  }
  return {
    async write(data: Buffer) {
      if (child) return send(data);
      head = Buffer.concat([head, data]);
      if (head.length < 12) return;
      if (head.readUInt32BE(8) === 0) return; // an empty pack: nothing to index
      start();
      await send(head);
    },
    async end() {
      if (!child) return;
      child.stdin!.end();
      const code = await exited;
      if (code !== 0)
        throw new DroverError(
          "offline",
          `Cannot index the pack the hub remote sent: git index-pack exited with ${code}: ${stderr.trim().split("\n").at(-1)}`,
        );
    },
  };
}

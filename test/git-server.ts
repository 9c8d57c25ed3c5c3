/**
 * A real smart-HTTP git remote for tests: `Bun.serve` on 127.0.0.1 handing each request to `git http-backend`
 * (CGI), serving the bare repositories under `root`. It can stop and start again on the same port, to play
 * an unreachable remote.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface GitServer {
  root: string;
  port: number;
  /** The URL of a bare repository under `root`. */
  url(repo: string): string;
  requests: number;
  stop(): Promise<void>;
  start(): void;
}

/** Makes a bare repository under a fresh temp root; returns its folder. */
export function bareRepo(name = "remote.git"): { root: string; path: string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "drover-remote-")));
  const path = join(root, name);
  execFileSync("git", ["init", "-q", "--bare", path]);
  return { root, path };
}

/** `delayMs`: every request waits this long first, as a hosted remote's round trip would. */
export function startGitServer(root: string, options: { delayMs?: number } = {}): GitServer {
  let server: ReturnType<typeof Bun.serve> | null = null;
  const delayMs = options.delayMs ?? 0;
  const self: GitServer = {
    root,
    port: 0,
    requests: 0,
    url: (repo) => `http://127.0.0.1:${self.port}/${repo}`,
    async stop() {
      await server?.stop(true);
      server = null;
    },
    start() {
      // with reusePort a second server would bind beside the first, and outlive the next stop()
      if (server) return;
      // the port of a server stopped a moment ago can take a little while to be free again
      for (let tries = 0; ; tries++) {
        try {
          server = Bun.serve({
            hostname: "127.0.0.1",
            port: self.port,
            reusePort: true,
            fetch: async (req) => {
              if (delayMs) await Bun.sleep(delayMs);
              return _backend(root, req, self);
            },
          });
          break;
        } catch (err) {
          if (tries >= 200) throw err;
          Bun.sleepSync(10);
        }
      }
      self.port = server.port!;
    },
  };
  self.start();
  return self;
}

async function _backend(root: string, req: Request, self: GitServer): Promise<Response> {
  self.requests++;
  const url = new URL(req.url);
  const proc = Bun.spawn(["git", "http-backend"], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      REMOTE_USER: "test", // receive-pack (push) needs an authenticated user
      REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers.get("content-type") ?? "",
      HTTP_CONTENT_ENCODING: req.headers.get("content-encoding") ?? "",
      GIT_CONFIG_NOSYSTEM: "1",
    },
    stdin: req.body ? new Uint8Array(await req.arrayBuffer()) : "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  const out = Buffer.from(await new Response(proc.stdout).arrayBuffer());
  await proc.exited;
  const split = out.indexOf("\r\n\r\n");
  const headers = new Headers();
  let status = 200;
  for (const line of out.subarray(0, split).toString().split("\r\n")) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
    else if (name) headers.set(name, value);
  }
  return new Response(out.subarray(split + 4), { status, headers });
}

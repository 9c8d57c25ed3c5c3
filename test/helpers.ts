/** Shared test helpers: throwaway projects, runtimes with an injected clock, processes, WebSocket clients. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initProject } from "../cli/init.ts";
import type { Clock } from "../core/clock.ts";
import { DroverError } from "../core/errors.ts";
import type { BusEvent } from "../core/events.ts";
import type { Feature } from "../core/feature.ts";
import { createLogger } from "../core/logger.ts";
import type { Paths } from "../core/paths.ts";
import { approve } from "../core/trust.ts";
import { openRuntime, type Runtime } from "../runtime.ts";

export const ROOT = join(import.meta.dir, "..");
export const BUN = process.execPath;
export const CLI = join(ROOT, "cli.ts");
export const BINARY = join(ROOT, "dist", "drover");

/**
 * How many generated cases a hostile-input property runs: `short` in `npm test`, or `DROVER_HOSTILE_RUNS` when set
 * (a longer run: `DROVER_HOSTILE_RUNS=2000 bun test test/hostile-*.test.ts`).
 */
export function hostileRuns(short: number): number {
  const long = Number(process.env.DROVER_HOSTILE_RUNS);
  return Number.isInteger(long) && long > 0 ? long : short;
}

/**
 * A temp git repository with drover initialised (local hub). `trusted`: the config's values with effects are
 * approved on this machine, as `drover trust --yes` does (a config the user wrote for themselves).
 */
export async function tempProject(
  options: { config?: string; trusted?: boolean } = {},
): Promise<{ paths: Paths; dir: string; cleanup(): void }> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-test-")));
  execFileSync("git", ["init", "-q", dir]);
  const { paths } = await initProject(dir, { local: true });
  if (options.config) await Bun.write(paths.config, options.config);
  if (options.trusted) await trustConfig(paths);
  return { paths, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Approves the project's config on this machine, as `drover trust --yes` does. */
export async function trustConfig(paths: Paths): Promise<void> {
  const rt = await openRuntime({ paths, mode: "cli" });
  approve(rt.ctx.db, rt.ctx.untrusted, rt.ctx.clock);
  await rt.close();
}

/** A runtime on the project with its events recorded. */
export async function testRuntime(
  paths: Paths,
  options: { clock?: Clock; mode?: "daemon" | "cli"; features?: readonly Feature[]; logLines?: string[] } = {},
): Promise<{ rt: Runtime; events: BusEvent[] }> {
  const log = createLogger("test", { level: "debug", write: (l) => options.logLines?.push(l) });
  const rt = await openRuntime({
    paths,
    mode: options.mode ?? "daemon",
    clock: options.clock,
    log,
    features: options.features,
  });
  const events: BusEvent[] = [];
  rt.ctx.bus.on("*", (e) => void events.push(e), { name: "test-recorder" });
  return { rt, events };
}

export interface Proc {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source as a separate process. */
export async function cli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Proc> {
  return run([BUN, CLI, ...args], cwd, env);
}

export async function run(cmd: string[], cwd: string, env: Record<string, string> = {}): Promise<Proc> {
  const proc = Bun.spawn(cmd, { cwd, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

export interface DaemonProc {
  proc: ReturnType<typeof Bun.spawn>;
  url: string;
  token: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts `serve --port 0` as a process (source or compiled) and waits until `daemon.json` names its URL. */
export async function startDaemonProcess(
  cmd: string[],
  paths: Paths,
  env: Record<string, string> = {},
  port = 0,
): Promise<DaemonProc> {
  const proc = Bun.spawn([...cmd, "serve", "--port", String(port)], {
    cwd: paths.root,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const info = JSON.parse(readFileSync(paths.daemon, "utf8"));
      if (info.url && info.pid === proc.pid) {
        const token = readFileSync(paths.token, "utf8").trim();
        return {
          proc,
          url: info.url,
          token,
          pid: proc.pid,
          async stop() {
            proc.kill("SIGTERM");
            await proc.exited;
          },
        };
      }
    } catch {
      // not there yet
    }
    if (proc.exitCode !== null)
      throw new Error(
        `daemon exited with ${proc.exitCode}: ${await new Response(proc.stderr as ReadableStream).text()}`,
      );
    if (Date.now() > deadline) throw new Error("daemon did not start within 15 s");
    await Bun.sleep(20);
  }
}

/** A WebSocket client that records frames and can wait for one. */
export async function wsClient(url: string, token?: string) {
  const ws = new WebSocket(
    url.replace(/^http/, "ws") + "/ws",
    token ? ({ headers: { authorization: `Bearer ${token}` } } as never) : undefined,
  );
  const frames: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.onmessage = (m) => {
    frames.push(JSON.parse(String(m.data)));
    for (const w of waiters.splice(0)) w();
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("WebSocket failed to open"));
  });
  return {
    ws,
    frames,
    async waitFor(pred: (f: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = frames.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline)
          throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames.slice(-5))}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    close: () => ws.close(),
  };
}

/** A port that was free a moment ago (for a daemon that must come back on the same one). */
export async function freePort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = s.port!;
  await s.stop(true);
  return port;
}

/** Waits until `url` answers /health; fails when `alive()` turns false first, or after 20 s. */
export async function waitHealthy(url: string, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (
    !(await fetch(url + "/health").then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (!alive()) throw new Error(`Process for "${url}" exited before it answered /health`);
    if (Date.now() > deadline) throw new Error(`Process for "${url}" did not answer /health within 20 s`);
    await Bun.sleep(5);
  }
}

/** Calls the daemon's API with the token. */
export async function api(url: string, token: string, path: string, body?: unknown, method?: string) {
  const res = await fetch(url + path, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** The environment for git commands that commit: a test machine may have no identity of its own. */
export const GIT_ENV: Record<string, string | undefined> = {
  ...process.env,
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@x",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@x",
};

/** `git <args>` in `cwd` with GIT_ENV, its output trimmed. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8" }).trim();
}

/** The project's first commit, on `main`, holding `files`: worktrees branch from it, merges land on it. */
export function firstCommit(dir: string, files: Record<string, string> = {}): void {
  git(dir, "checkout", "-q", "-b", "main");
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  if (Object.keys(files).length) git(dir, "add", "--", ...Object.keys(files));
  git(dir, "commit", "-q", "--allow-empty", "-m", "init");
}

/** Polls `check` until it holds; throws after `ms`, saying what `message` tells of the state it saw last. */
export async function until(
  check: () => unknown | Promise<unknown>,
  ms = 10_000,
  options: { message?: () => string | Promise<string> } = {},
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`not within ${ms} ms${options.message ? `: ${await options.message()}` : ""}`);
    await Bun.sleep(50);
  }
}

/** A WebSocket upgrade request as fetch sends it: the HTTP answer of a refused upgrade can be read. */
export function upgrade(url: string, headers: Record<string, string>) {
  return fetch(url, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      ...headers,
    },
  });
}

/** Creates an item through a daemon's API; its id. */
export async function createItem(d: { url: string; token: string }, title: string): Promise<string> {
  const r = await api(d.url, d.token, "/api/items", { title });
  if (r.status !== 201) throw new Error(`item.create answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** An item as a daemon's API gives it. */
export async function getItem(d: { url: string; token: string }, id: string): Promise<any> {
  return (await api(d.url, d.token, `/api/items/${id}`)).body;
}

/** The DroverError an op refused with; fails when it was not refused (or failed otherwise). */
export async function refused(p: Promise<unknown>): Promise<DroverError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof DroverError) return err;
  throw new Error(`expected a refusal, got ${String(err)}`);
}

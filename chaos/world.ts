/**
 * The chaos run's world: one HTTP git remote (real `git http-backend`), a gateway, N machines — each a clone of
 * the project with the compiled daemon serving it on a fixed port — one clock offset file every daemon reads
 * (`DROVER_CLOCK_FILE`), and a sink that records what timers and triggers deliver by webhook.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../core/files.ts";
import type { Paths } from "../core/paths.ts";
import { bareRepo, type GitServer, startGitServer } from "../test/git-server.ts";
import { BINARY, freePort, waitHealthy } from "../test/helpers.ts";
import { joinedProject } from "../test/sync-machines.ts";
import { olderDrover } from "./older.ts";

const PROJECT = "chaos";
const GATEWAY_TOKEN = "chaos-reader-token-0000";
const RELAY_TOKEN = "chaos-relay-token-00000";

export interface ChaosMachine {
  index: number;
  paths: Paths;
  url: string;
  token: string;
  /** Null while killed. */
  proc: ReturnType<typeof Bun.spawn> | null;
  /** Exits nobody asked for (a crash), with the exit code. */
  crashes: number[];
  /** The drover it runs: this one, or an older one (a team not all upgraded). */
  binary: string;
}

/** A webhook delivery the sink received: which path, and the JSON body. */
export interface Delivery {
  path: string;
  body: any;
}

export interface World {
  dir: string;
  remote: { path: string; server: GitServer; url: string };
  gateway: { url: string; proc: ReturnType<typeof Bun.spawn> };
  machines: ChaosMachine[];
  sinkUrl: string;
  deliveries: Delivery[];
  /** Current clock offset of every daemon, ms. */
  offset: number;
  jumpClock(ms: number): void;
  kill(m: ChaosMachine): Promise<void>;
  start(m: ChaosMachine): Promise<void>;
  close(options?: { keep?: boolean }): Promise<void>;
}

/** `older`: how many machines (the first ones) run the drover from before presence refs. */
export async function createWorld(options: { machines: number; older?: number; parent?: string }): Promise<World> {
  const dir = realpathSync(mkdtempSync(join(options.parent ?? tmpdir(), "drover-chaos-")));
  const { root, path } = bareRepo();
  const server = startGitServer(root);
  const deliveries: Delivery[] = [];
  const sink = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      deliveries.push({ path: new URL(req.url).pathname, body: await req.json().catch(() => null) });
      return new Response("ok");
    },
  });
  const clockFile = join(dir, "clock-offset");
  writeFileSync(clockFile, "0");
  const gateway = await _startGateway(dir);
  const env = {
    DROVER_CLOCK_FILE: clockFile,
    DROVER_GATEWAY_URL: gateway.url,
    DROVER_GATEWAY_TOKEN: RELAY_TOKEN,
    DROVER_GATEWAY_PROJECT: PROJECT,
    DROVER_LOG: "warn",
  };

  const machines: ChaosMachine[] = [];
  const world: World = {
    dir,
    remote: { path, server, url: server.url("remote.git") },
    gateway,
    machines,
    sinkUrl: `http://127.0.0.1:${sink.port}`,
    deliveries,
    offset: 0,
    jumpClock(ms) {
      world.offset += ms;
      writeFileAtomic(clockFile, String(world.offset));
    },
    async kill(m) {
      const proc = m.proc;
      if (!proc) return;
      m.proc = null;
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async start(m) {
      const log = openSync(join(dir, `machine-${m.index}.log`), "a");
      const proc = Bun.spawn([m.binary, "serve", "--port", new URL(m.url).port], {
        cwd: m.paths.root,
        env: { ...process.env, ...env },
        stdout: log,
        stderr: log,
      });
      closeSync(log);
      m.proc = proc;
      try {
        await waitHealthy(m.url, () => proc.exitCode === null);
      } catch (err) {
        m.proc = null; // a start that failed (its port not yet free) is the caller's to retry, not a crash
        proc.kill("SIGKILL");
        throw err;
      }
      // from now on, an exit nobody asked for is a crash
      void proc.exited.then((code) => {
        if (m.proc === proc) {
          m.crashes.push(code);
          m.proc = null;
        }
      });
    },
    async close(closeOptions = {}) {
      for (const m of machines) {
        const proc = m.proc;
        m.proc = null;
        proc?.kill("SIGTERM");
        await proc?.exited;
      }
      gateway.proc.kill("SIGTERM");
      await gateway.proc.exited;
      await server.stop();
      await sink.stop(true);
      if (!closeOptions.keep) {
        rmSync(dir, { recursive: true, force: true });
        rmSync(root, { recursive: true, force: true });
      }
    },
  };

  for (let index = 0; index < options.machines; index++) {
    const parent = join(dir, `machine-${index}`);
    mkdirSync(parent);
    const { paths } = await joinedProject(world.remote.url, parent);
    // a project with a first commit, so items moving into coding get their worktrees
    execFileSync(
      "git",
      [
        "-c",
        "user.name=chaos",
        "-c",
        "user.email=chaos@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "project start",
      ],
      { cwd: paths.root },
    );
    // short leases and a quick watchdog so a run of minutes sees claims lapse and agents taken over
    await Bun.write(paths.config, `[pipeline]\nclaim_ttl_secs = 30\n\n[heartbeats]\ntakeover_grace_secs = 20\n`);
    const port = await freePort();
    const token = (await Bun.file(paths.token).text()).trim();
    const binary = index < (options.older ?? 0) ? olderDrover() : BINARY;
    const m: ChaosMachine = { index, paths, url: `http://127.0.0.1:${port}`, token, proc: null, crashes: [], binary };
    machines.push(m);
    await world.start(m);
  }
  return world;
}

export { GATEWAY_TOKEN, PROJECT };

// --- internal ---

async function _startGateway(dir: string) {
  writeFileSync(
    join(dir, "gateway.toml"),
    `token = "${GATEWAY_TOKEN}"\n\n[[project]]\nname = "${PROJECT}"\ntoken = "${RELAY_TOKEN}"\n`,
  );
  const port = await freePort();
  const log = openSync(join(dir, "gateway.log"), "a");
  const proc = Bun.spawn([BINARY, "gateway", "--config", join(dir, "gateway.toml"), "--port", String(port)], {
    stdout: log,
    stderr: log,
  });
  closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, () => proc.exitCode === null);
  return { url, proc };
}

/**
 * @module `drover serve`: the daemon. One per repository (a second exits 1 naming the first's pid; a stale
 * `daemon.json` from a killed daemon is replaced); SIGINT, SIGTERM and SIGHUP (its terminal closed) shut it
 * down cleanly.
 */
import { hostname } from "node:os";
import { claimDaemon, type DaemonInfo, releaseDaemon, updateDaemon } from "../core/daemon-file.ts";
import { DroverError } from "../core/errors.ts";
import { readToken } from "../core/identity.ts";
import type { Paths } from "../core/paths.ts";
import { processStart } from "../core/process.ts";
import { openRuntime, type Runtime, VERSION } from "../runtime.ts";
import { type RunningServer, startServer } from "../server/serve.ts";

export interface Daemon {
  rt: Runtime;
  server: RunningServer;
  token: string;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  host?: string;
  port?: number;
}

/**
 * Starts the daemon and stops it on SIGINT/SIGTERM/SIGHUP, then exits; `after` runs once it stopped (the demo:
 * its folder). The handlers go in before anything is published: a signal sent as soon as
 * `daemon.json` names the URL would otherwise meet the default action and leave that file behind.
 */
export async function serveDaemon(paths: Paths, options: DaemonOptions & { after?: () => void } = {}): Promise<Daemon> {
  const starting = _startDaemon(paths, options);
  const onSignal = (signal: string) => {
    void (async () => {
      const daemon = await starting.catch(() => undefined);
      if (!daemon) return; // the start failed: its caller reports that and exits
      daemon.rt.ctx.log.info(`Received ${signal}: shutting down`);
      await daemon.stop();
      options.after?.();
      process.exit(0);
    })().catch(() => process.exit(3));
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => onSignal(signal));
  return starting;
}

// --- internal ---

/** Starts the daemon for a project and returns once it answers. */
async function _startDaemon(paths: Paths, options: DaemonOptions = {}): Promise<Daemon> {
  const info: DaemonInfo = {
    pid: process.pid,
    pid_start: processStart(process.pid),
    host: hostname(),
    port: null,
    url: null,
    started_at: new Date().toISOString(),
    version: VERSION,
  };
  claimDaemon(paths, info);
  let rt: Runtime | undefined;
  let server: RunningServer | undefined;
  try {
    rt = await openRuntime({ paths, mode: "daemon" });
    for (const w of rt.warnings) rt.ctx.log.warn(w);
    const token = readToken(paths);
    const host = options.host ?? rt.ctx.config.server.host;
    server = _listen(rt, { host, port: options.port ?? rt.ctx.config.server.port, token, version: VERSION });
    rt.ctx.endpoint = { url: server.url, token };
    await rt.start();
    // the URL is published last: whoever reads it may rely on a fully started daemon
    updateDaemon(paths, { ...info, port: server.port, url: server.url });
    const [r, s] = [rt, server];
    let stopping: Promise<void> | undefined;
    return {
      rt: r,
      server: s,
      token,
      stop() {
        stopping ??= (async () => {
          await s.stop();
          await r.close();
          releaseDaemon(paths);
        })();
        return stopping;
      },
    };
  } catch (err) {
    await server?.stop();
    await rt?.close().catch(() => undefined);
    releaseDaemon(paths);
    throw err;
  }
}

/** Starts the server; a host or port it cannot listen on is a clear refusal, not an internal error. */
function _listen(rt: Runtime, options: Parameters<typeof startServer>[1]): RunningServer {
  try {
    return startServer(rt, options);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const where = `"${options.host}" port ${options.port}`;
    if (code === "EADDRINUSE") throw new DroverError("busy", `Cannot listen on ${where}: the port is in use`);
    throw new DroverError(
      "bad_config",
      `Cannot listen on ${where} (server.host, server.port): ${(err as Error).message}`,
    );
  }
}

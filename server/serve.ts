/**
 * @module Binds the daemon's server: Bun's native WebSocket for `/ws` (Host, token and the client cap checked
 * before the upgrade), everything else through the Hono app.
 */
import type { Server } from "bun";
import { DroverError } from "../core/errors.ts";
import type { Runtime } from "../runtime.ts";
import { checkToken, errorResponse, hostGuard } from "../web/guard.ts";
import { createWsHub, createWsLimit, type WsClient } from "../web/ws.ts";
import { createApp } from "./app.ts";

export interface RunningServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface ServeOptions {
  host: string;
  port: number;
  token: string;
  version: string;
  /** Bytes a WebSocket client may have waiting before events are dropped for it (default 1 MiB). */
  wsMaxBuffered?: number;
  /** Seconds a request may stay silent before the server closes it (Bun's default 10); `/mcp` streams are exempt. */
  idleTimeoutSecs?: number;
}

export function startServer(rt: Runtime, options: ServeOptions): RunningServer {
  const { allowed_hosts, max_ws_clients } = rt.ctx.config.server;
  const app = createApp(rt, {
    token: options.token,
    version: options.version,
    startedAt: Date.now(),
    host: options.host,
  });
  const checkHost = hostGuard(options.host, { extra: allowed_hosts, setting: "server.allowed_hosts" });
  const ws = createWsHub(rt.ctx.bus, {
    log: rt.ctx.log.child("ws"),
    limit: createWsLimit(max_ws_clients),
    maxBuffered: options.wsMaxBuffered,
  });
  const server: Server<WsClient> = Bun.serve<WsClient>({
    hostname: options.host,
    port: options.port,
    idleTimeout: options.idleTimeoutSecs ?? 10,
    fetch(req, srv) {
      const path = new URL(req.url).pathname;
      // an MCP client keeps a stream open for as long as its session lasts, quiet most of the time
      if (path === "/mcp") srv.timeout(req, 0);
      if (path === "/ws") {
        const refused = checkHost(req);
        if (refused) return errorResponse(refused);
        if (!checkToken(req, options.token, { allowQuery: true }))
          return errorResponse(new DroverError("unauthorized", "Missing or wrong bearer token"));
        return ws.upgrade(req, srv);
      }
      return app.fetch(req, srv);
    },
    websocket: ws.websocket,
  });
  const port = server.port!;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`,
    port,
    async stop() {
      ws.close();
      await server.stop(true);
    },
  };
}

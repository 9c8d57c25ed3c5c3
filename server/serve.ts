/**
 * @module Binds the daemon's server: Bun's native WebSocket for `/ws` (token checked before the upgrade),
 * everything else through the Hono app.
 */
import type { Server } from "bun";
import { DroverError } from "../core/errors.ts";
import type { Runtime } from "../runtime.ts";
import { checkToken, createApp } from "./app.ts";
import { createWsHub, type WsClient } from "./ws.ts";

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
}

export function startServer(rt: Runtime, options: ServeOptions): RunningServer {
  const app = createApp(rt, { token: options.token, version: options.version, startedAt: Date.now() });
  const ws = createWsHub(rt.ctx.bus, { maxBuffered: options.wsMaxBuffered });
  const server: Server<WsClient> = Bun.serve<WsClient>({
    hostname: options.host,
    port: options.port,
    fetch(req, srv) {
      if (new URL(req.url).pathname === "/ws") {
        if (!checkToken(req, options.token, { allowQuery: true })) {
          return Response.json({ error: new DroverError("unauthorized", "Missing or wrong bearer token").toJSON() }, { status: 401 });
        }
        if (ws.upgrade(req, srv)) return undefined;
        return Response.json({ error: new DroverError("invalid_input", "Expected a WebSocket upgrade").toJSON() }, { status: 400 });
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

/**
 * @module `drover gateway`: one place for every project's agents and pipeline. Daemons connect their relays to
 * `/relay` with their project's name and token (./intake.ts); readers use the gateway token for
 * `/api/projects…` and `/ws`, where every project's events arrive tagged with `project`. Every request must name
 * the gateway in its `Host`; the WebSockets of readers and relays together are capped (`max_ws_clients`). A bad
 * frame is answered (readers) or dropped and counted (relays); neither disturbs the other connections.
 */
import type { Server, ServerWebSocket } from "bun";
import { Hono } from "hono";
import { createBus } from "../../core/bus.ts";
import { systemClock } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import { dashboardHtml } from "../../web/dashboard.ts";
import { checkToken, errorResponse, hostGuard } from "../../web/guard.ts";
import { createWsHub, createWsLimit, type WsClient } from "../../web/ws.ts";
import type { GatewayConfig } from "./config.ts";
import { RELAY_FRAME_BYTES } from "./frames.ts";
import { createIntake, type IntakeStats, type RelayData } from "./intake.ts";
import { createGatewayState, type GatewayState } from "./state.ts";

type Data = ({ kind: "reader" } & WsClient) | RelayData;

export interface RunningGateway {
  url: string;
  port: number;
  stats: IntakeStats;
  stop(): Promise<void>;
}

export function startGateway(
  config: GatewayConfig,
  options: { host: string; port: number; log: Logger },
): RunningGateway {
  const log = options.log;
  const state = createGatewayState(config.project.map((p) => p.name));
  const tokens = new Map(config.project.map((p) => [p.name, p.token]));
  const bus = createBus({ clock: systemClock, log: log.child("bus") });
  const limit = createWsLimit(config.max_ws_clients ?? 1000);
  const readers = createWsHub(bus, { log: log.child("ws"), limit, limitSetting: "max_ws_clients in gateway.toml" });
  const stats: IntakeStats = { malformed: 0, refused: 0 };
  const relays = createIntake({ state, bus, tokens, limit, log: log.child("relay"), stats });
  const checkHost = hostGuard(options.host, {
    extra: config.allowed_hosts ?? [],
    setting: "allowed_hosts of gateway.toml",
  });
  const app = _api(config, state, tokens, log);

  const reader = (ws: ServerWebSocket<Data>) => ws as ServerWebSocket<WsClient>;
  const relay = (ws: ServerWebSocket<Data>) => ws as ServerWebSocket<RelayData>;
  let server: Server<Data>;
  try {
    server = Bun.serve<Data>({
      hostname: options.host,
      port: options.port,
      fetch(req, srv) {
        const refused = checkHost(req);
        if (refused) return errorResponse(refused);
        const path = new URL(req.url).pathname;
        if (path === "/relay") return relays.upgrade(req, srv as Server<RelayData>);
        if (path === "/ws") {
          if (!checkToken(req, config.token, { allowQuery: true }))
            return errorResponse(new DroverError("unauthorized", "Missing or wrong bearer token"));
          return readers.upgrade(req, srv as unknown as Server<WsClient>, { kind: "reader" });
        }
        return app.fetch(req, srv);
      },
      websocket: {
        // the relays' limit: readers' frames are held to theirs by the readers' hub
        maxPayloadLength: RELAY_FRAME_BYTES,
        idleTimeout: 120,
        open(ws) {
          if (ws.data.kind === "reader") readers.websocket.open?.(reader(ws));
          else relays.open(relay(ws));
        },
        message(ws, raw) {
          if (ws.data.kind === "reader") readers.websocket.message?.(reader(ws), raw);
          else relays.message(relay(ws), raw);
        },
        drain(ws) {
          if (ws.data.kind === "reader") readers.websocket.drain?.(reader(ws));
        },
        close(ws, code, reason) {
          if (ws.data.kind === "reader") readers.websocket.close?.(reader(ws), code, reason);
          else relays.close(relay(ws));
        },
      },
    });
  } catch (err) {
    throw new DroverError("busy", `Cannot listen on "${options.host}" port ${options.port}: ${(err as Error).message}`);
  }
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${server.port}`,
    port: server.port!,
    stats,
    async stop() {
      readers.close();
      await server.stop(true);
    },
  };
}

// --- internal ---

function _api(config: GatewayConfig, state: GatewayState, tokens: Map<string, string>, log: Logger): Hono {
  const known = (name: string) => {
    if (!tokens.has(name))
      throw new DroverError("not_found", `Cannot find project ${JSON.stringify(name.slice(0, 64))}`);
    return name;
  };
  const app = new Hono();
  app.onError((err, c) => {
    const e = err instanceof DroverError ? err : new DroverError("internal", "Internal error");
    if (e.status >= 500) log.error("Gateway request failed", { error: err });
    return c.json({ error: e.toJSON() }, e.status as 400);
  });
  app.notFound((c) =>
    c.json({ error: { code: "not_found", message: `Cannot find route "${c.req.method} ${c.req.path}"` } }, 404),
  );
  app.get("/health", (c) => c.json({ ok: true, role: "gateway", projects: tokens.size }));
  app.get("/", (c) => c.html(dashboardHtml));
  app.use("*", async function requireToken(c, next) {
    if (!checkToken(c.req.raw, config.token)) throw new DroverError("unauthorized", "Missing or wrong bearer token");
    await next();
  });
  app.get("/api/projects", (c) => c.json(state.projects(Date.now())));
  app.get("/api/projects/:name/agents", (c) => c.json(state.agents(known(c.req.param("name")))));
  app.get("/api/projects/:name/items", (c) => c.json(state.items(known(c.req.param("name")))));
  return app;
}

/**
 * @module `drover gateway`: one place for every project's agents and pipeline. Daemons connect their relays to
 * `/relay` with their project's token; readers use the gateway token for `/api/projects…` and `/ws`, where
 * every project's events arrive tagged with `project`. A relay with an unknown project or a wrong token is
 * closed with a reason; a malformed frame is dropped and counted; neither disturbs the other projects.
 */
import { timingSafeEqual } from "node:crypto";
import type { Server, ServerWebSocket } from "bun";
import { Hono } from "hono";
import { createBus } from "../../core/bus.ts";
import { systemClock } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import type { BusEvent } from "../../core/events.ts";
import type { Logger } from "../../core/logger.ts";
import { checkToken } from "../../server/app.ts";
import { dashboardHtml } from "../../server/dashboard.ts";
import { createWsHub, type WsClient } from "../../server/ws.ts";
import type { GatewayConfig } from "./config.ts";
import { createGatewayState } from "./state.ts";

/** Bigger relay frames close that relay (1009); it reconnects and sends a fresh snapshot. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const HELLO_WITHIN_MS = 5000;

type RelayData = { kind: "relay"; token: string; project?: string; machine?: string; timer?: ReturnType<typeof setTimeout> };
type Data = ({ kind: "reader" } & WsClient) | RelayData;

export interface RunningGateway {
  url: string;
  port: number;
  stats: { malformed: number; refused: number };
  stop(): Promise<void>;
}

export function startGateway(config: GatewayConfig, options: { host: string; port: number; log: Logger }): RunningGateway {
  const log = options.log;
  const state = createGatewayState(config.project.map((p) => p.name));
  const tokens = new Map(config.project.map((p) => [p.name, p.token]));
  const bus = createBus({ clock: systemClock, log: log.child("bus") });
  const readers = createWsHub(bus);
  const stats = { malformed: 0, refused: 0 };

  const app = new Hono();
  app.onError((err, c) => {
    const e = err instanceof DroverError ? err : new DroverError("internal", "Internal error");
    if (e.status >= 500) log.error("Gateway request failed", { error: err });
    return c.json({ error: e.toJSON() }, e.status as 400);
  });
  app.notFound((c) => c.json({ error: { code: "not_found", message: `Cannot find route "${c.req.method} ${c.req.path}"` } }, 404));
  app.get("/health", (c) => c.json({ ok: true, role: "gateway", projects: tokens.size }));
  app.get("/", (c) => c.html(dashboardHtml));
  app.use("*", async function requireToken(c, next) {
    if (!checkToken(c.req.raw, config.token)) throw new DroverError("unauthorized", "Missing or wrong bearer token");
    await next();
  });
  app.get("/api/projects", (c) => c.json(state.projects(Date.now())));
  app.get("/api/projects/:name/agents", (c) => c.json(state.agents(_known(tokens, c.req.param("name")))));
  app.get("/api/projects/:name/items", (c) => c.json(state.items(_known(tokens, c.req.param("name")))));

  function refuse(ws: ServerWebSocket<Data>, code: number, reason: string) {
    stats.refused++;
    log.warn(`Relay refused: ${reason}`);
    ws.close(code, reason);
  }

  function onRelayFrame(ws: ServerWebSocket<Data>, data: RelayData, raw: string | Buffer) {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(String(raw));
      if (!frame || typeof frame !== "object" || Array.isArray(frame)) throw new Error("not an object");
    } catch {
      return _malformed(log, stats, data, "not a JSON object");
    }
    if (!data.project) {
      if (frame.type !== "hello" || typeof frame.project !== "string" || typeof frame.machine_id !== "string") return refuse(ws, 4400, "Expected a hello first");
      const expected = tokens.get(frame.project);
      if (!expected) return refuse(ws, 4404, `Unknown project "${frame.project.slice(0, 64)}"`);
      if (!_same(data.token, expected)) return refuse(ws, 4401, `Wrong token for project "${frame.project}"`);
      clearTimeout(data.timer);
      data.project = frame.project;
      data.machine = frame.machine_id.slice(0, 128);
      state.connect(data.project, data.machine, Date.now());
      return;
    }
    if (frame.type === "snapshot" && typeof frame.at === "string") return state.snapshot(data.project, data.machine!, frame as never, Date.now());
    const event = frame.event as Record<string, unknown> | undefined;
    if (frame.type !== "event" || !event || typeof event.type !== "string" || typeof event.at !== "string") return _malformed(log, stats, data, "not a snapshot or an event");
    state.event(data.project, data.machine!, event, Date.now());
    bus.deliver({ ...event, project: data.project, machine_id: event.machine_id ?? data.machine } as unknown as BusEvent);
  }

  const server: Server<Data> = Bun.serve<Data>({
    hostname: options.host,
    port: options.port,
    fetch(req, srv) {
      const path = new URL(req.url).pathname;
      if (path === "/relay") {
        const header = req.headers.get("authorization") ?? "";
        const token = header.startsWith("Bearer ") ? header.slice(7) : "";
        if (srv.upgrade(req, { data: { kind: "relay", token } })) return undefined;
        return Response.json({ error: { code: "invalid_input", message: "Expected a WebSocket upgrade" } }, { status: 400 });
      }
      if (path === "/ws") {
        if (!checkToken(req, config.token, { allowQuery: true })) return Response.json({ error: { code: "unauthorized", message: "Missing or wrong bearer token" } }, { status: 401 });
        if (srv.upgrade(req, { data: { kind: "reader", seq: 0, topics: null, dropped: 0 } })) return undefined;
      }
      return app.fetch(req, srv);
    },
    websocket: {
      maxPayloadLength: MAX_FRAME_BYTES,
      idleTimeout: 120,
      open(ws) {
        if (ws.data.kind === "reader") return void readers.websocket.open?.(ws as never);
        const data = ws.data;
        data.timer = setTimeout(() => !data.project && refuse(ws, 4400, "No hello within 5 s"), HELLO_WITHIN_MS);
      },
      message(ws, raw) {
        if (ws.data.kind === "reader") return void readers.websocket.message?.(ws as never, raw);
        onRelayFrame(ws, ws.data, raw);
      },
      drain(ws) {
        if (ws.data.kind === "reader") readers.websocket.drain?.(ws as never);
      },
      close(ws, code, reason) {
        if (ws.data.kind === "reader") return readers.websocket.close?.(ws as never, code, reason);
        clearTimeout(ws.data.timer);
        if (ws.data.project) state.disconnect(ws.data.project, ws.data.machine!, Date.now());
      },
    },
  });
  return {
    url: `http://${options.host}:${server.port}`,
    port: server.port!,
    stats,
    async stop() {
      readers.close();
      await server.stop(true);
    },
  };
}

// --- internal ---

function _known(tokens: Map<string, string>, name: string): string {
  if (!tokens.has(name)) throw new DroverError("not_found", `Cannot find project "${name}"`);
  return name;
}

function _same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function _malformed(log: Logger, stats: { malformed: number }, data: RelayData, reason: string) {
  stats.malformed++;
  log.warnOnce(`malformed:${data.project}:${reason}`, `Dropped a relay frame from "${data.project ?? "?"}": ${reason}`);
}

/**
 * @module `GET /ws`: every bus event to every connected client as `{seq, type, …event}`, `seq` counting per
 * connection from 1. Clients may narrow to topics. A client whose socket backs up past the limit stops
 * receiving; when it drains it gets `{type: "gap", dropped}` and carries on, so memory per client is bounded.
 * Client frames are validated before use: a bad one is answered with `{seq, type: "error", message}`, a frame
 * over the size limit closes that socket (1009), and an unexpected error in one connection's handler closes
 * that connection (1011) — never the process. The clients of a process are capped (`WsLimit`).
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { z } from "zod";
import type { Bus } from "../core/bus.ts";
import { DroverError } from "../core/errors.ts";
import { type BusEvent, eventDef, topics } from "../core/events.ts";
import type { Logger } from "../core/logger.ts";
import { errorResponse } from "./guard.ts";

/** Client frames are subscribe messages of a few dozen bytes; a bigger one closes the socket (1009). */
export const CLIENT_FRAME_BYTES = 4096;

export interface WsClient {
  seq: number;
  topics: Set<string> | null;
  dropped: number;
}

/** The WebSocket clients of one process, counted from the upgrade to the close. */
export interface WsLimit {
  /** Counts one more client; false (and nothing counted) when the cap is reached. */
  take(): boolean;
  release(): void;
  count(): number;
  /** The 503 for an upgrade past the cap; `setting` names where the cap is configured. */
  busy(setting: string): Response;
}

export interface WsHub {
  /** Upgrades the request (with `data` added to the client's); otherwise the response to give: 503 past the cap, 400. */
  upgrade(req: Request, server: Server<WsClient>, data?: object): Response | undefined;
  websocket: WebSocketHandler<WsClient>;
  clients(): number;
  close(): void;
}

export interface WsHubOptions {
  log: Logger;
  limit: WsLimit;
  /** Where the cap is configured, for the 503's message (default `server.max_ws_clients`). */
  limitSetting?: string;
  /** Bytes a client may have waiting before events are dropped for it (default 1 MiB). */
  maxBuffered?: number;
}

export function createWsLimit(max: number): WsLimit {
  let open = 0;
  return {
    take() {
      if (open >= max) return false;
      open++;
      return true;
    },
    release() {
      open = Math.max(0, open - 1);
    },
    count: () => open,
    busy: (setting) =>
      errorResponse(
        new DroverError("busy", `Cannot open another WebSocket: ${max} are open, the limit set by ${setting}`),
      ),
  };
}

/** Runs one connection's handler: an unexpected error is logged and closes that connection (1011) only. */
export function guarded(log: Logger, ws: ServerWebSocket<unknown>, handler: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error(`WebSocket ${handler} handler failed: closing that connection`, { error: err as Error });
    try {
      ws.close(1011, "Internal error");
    } catch {
      // already closed
    }
  }
}

export function createWsHub(bus: Bus, options: WsHubOptions): WsHub {
  const { log, limit } = options;
  const maxBuffered = options.maxBuffered ?? 1024 * 1024;
  const clients = new Set<ServerWebSocket<WsClient>>();
  // every feature declared its events when it was loaded, before any server starts
  const known = topics();

  function send(ws: ServerWebSocket<WsClient>, frame: Record<string, unknown> | string) {
    const c = ws.data;
    if (c.dropped || ws.getBufferedAmount() > maxBuffered) {
      c.dropped++;
      return;
    }
    const body = typeof frame === "string" ? frame : JSON.stringify(frame);
    const status = ws.send(`{"seq":${++c.seq},${body.slice(1)}`, false);
    if (status === 0) c.dropped++;
  }

  function broadcast(event: BusEvent) {
    const body = JSON.stringify(event);
    const topic = eventDef(event.type)?.topic ?? "system";
    for (const ws of clients) {
      const wanted = ws.data.topics;
      if (wanted && !wanted.has(topic) && event.type !== "gap") continue;
      guarded(log, ws, "send", () => send(ws, body));
    }
  }

  const unsubscribe = bus.on("*", broadcast, { name: "ws", queueLimit: 100_000 });

  return {
    upgrade(req, server, data = {}) {
      if (!limit.take()) return limit.busy(options.limitSetting ?? "server.max_ws_clients");
      if (server.upgrade(req, { data: { ...data, seq: 0, topics: null, dropped: 0 } })) return undefined;
      limit.release();
      return errorResponse(new DroverError("invalid_input", "Expected a WebSocket upgrade"));
    },
    clients: () => clients.size,
    close() {
      unsubscribe();
      for (const ws of clients) ws.close(1001, "Server shutting down");
    },
    websocket: {
      idleTimeout: 120,
      maxPayloadLength: CLIENT_FRAME_BYTES,
      open(ws) {
        clients.add(ws);
      },
      close(ws) {
        clients.delete(ws);
        limit.release();
      },
      drain(ws) {
        guarded(log, ws, "drain", () => {
          const c = ws.data;
          if (!c.dropped || ws.getBufferedAmount() > maxBuffered / 2) return;
          const dropped = c.dropped;
          c.dropped = 0;
          ws.send(JSON.stringify({ seq: ++c.seq, type: "gap", dropped }), false);
        });
      },
      message(ws, raw) {
        guarded(log, ws, "message", () => {
          // the gateway serves relays' bigger frames on the same server, so the size is checked here too
          if ((typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength) > CLIENT_FRAME_BYTES)
            return ws.close(1009, "Frame too large");
          const frame = _clientFrame(raw, known);
          if ("error" in frame) return send(ws, { type: "error", message: frame.error });
          ws.data.topics = frame.topics.length ? new Set(frame.topics) : null;
          send(ws, { type: "subscribed", topics: frame.topics });
        });
      },
    },
  };
}

// --- internal ---

const _subscribeSchema = z.object({
  type: z.literal("subscribe"),
  topics: z.array(z.string().max(64)).max(64).optional(),
});

/** A client frame: the topics of a valid subscribe message, or what is wrong with it. */
function _clientFrame(raw: string | Buffer, known: readonly string[]): { topics: string[] } | { error: string } {
  if (typeof raw !== "string") return { error: "Invalid message: expected a text frame with JSON" };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { error: "Invalid message: not valid JSON" };
  }
  const parsed = _subscribeSchema.safeParse(value);
  if (!parsed.success) {
    if (!value || typeof value !== "object" || Array.isArray(value))
      return { error: "Invalid message: expected a JSON object" };
    const type = (value as { type?: unknown }).type;
    if (type !== "subscribe")
      return {
        error: `Unknown message type ${typeof type === "string" ? JSON.stringify(type.slice(0, 64)) : `(${typeof type})`}`,
      };
    return { error: `Invalid message: "topics" must be a list of at most 64 topic names` };
  }
  const wanted = parsed.data.topics ?? [];
  const unknown = wanted.find((t) => !known.includes(t));
  if (unknown !== undefined)
    return { error: `Unknown topic ${JSON.stringify(unknown)}: known are ${known.join(", ")}` };
  return { topics: wanted };
}

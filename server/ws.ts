/**
 * @module `GET /ws`: every bus event to every connected client as `{seq, type, …event}`, `seq` counting per
 * connection from 1. Clients may narrow to topics. A client whose socket backs up past the limit stops
 * receiving; when it drains it gets `{type: "gap", dropped}` and carries on, so memory per client is bounded.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { Bus } from "../core/bus.ts";
import { eventTypes, topics, type BusEvent } from "../core/events.ts";

export interface WsClient {
  seq: number;
  topics: Set<string> | null;
  dropped: number;
}

export interface WsHub {
  /** Upgrades the request; returns false when it was not a WebSocket request. */
  upgrade(req: Request, server: Server<WsClient>): boolean;
  websocket: WebSocketHandler<WsClient>;
  clients(): number;
  close(): void;
}

export interface WsHubOptions {
  /** Bytes a client may have waiting before events are dropped for it (default 1 MiB). */
  maxBuffered?: number;
}

export function createWsHub(bus: Bus, options: WsHubOptions = {}): WsHub {
  const maxBuffered = options.maxBuffered ?? 1024 * 1024;
  const clients = new Set<ServerWebSocket<WsClient>>();

  function send(ws: ServerWebSocket<WsClient>, body: string) {
    const c = ws.data;
    if (c.dropped || ws.getBufferedAmount() > maxBuffered) {
      c.dropped++;
      return;
    }
    const status = ws.send(`{"seq":${++c.seq},${body.slice(1)}`, false);
    if (status === 0) c.dropped++;
  }

  function broadcast(event: BusEvent) {
    const body = JSON.stringify(event);
    const topic = (eventTypes as Record<string, { topic: string }>)[event.type]?.topic ?? "system";
    for (const ws of clients) {
      const wanted = ws.data.topics;
      if (wanted && !wanted.has(topic) && event.type !== "gap") continue;
      send(ws, body);
    }
  }

  const unsubscribe = bus.on("*", broadcast, { name: "ws", queueLimit: 100_000 });

  return {
    upgrade(req, server) {
      return server.upgrade(req, { data: { seq: 0, topics: null, dropped: 0 } });
    },
    clients: () => clients.size,
    close() {
      unsubscribe();
      for (const ws of clients) ws.close(1001, "Server shutting down");
    },
    websocket: {
      idleTimeout: 120,
      open(ws) {
        clients.add(ws);
      },
      close(ws) {
        clients.delete(ws);
      },
      drain(ws) {
        const c = ws.data;
        if (!c.dropped || ws.getBufferedAmount() > maxBuffered / 2) return;
        const dropped = c.dropped;
        c.dropped = 0;
        ws.send(JSON.stringify({ seq: ++c.seq, type: "gap", dropped }), false);
      },
      message(ws, raw) {
        let msg: { type?: unknown; topics?: unknown };
        try {
          msg = JSON.parse(String(raw));
        } catch {
          return void ws.send(JSON.stringify({ seq: ++ws.data.seq, type: "error", message: "Invalid message: not valid JSON" }));
        }
        if (msg.type !== "subscribe") {
          return void ws.send(JSON.stringify({ seq: ++ws.data.seq, type: "error", message: `Unknown message type "${String(msg.type)}"` }));
        }
        const wanted = Array.isArray(msg.topics) ? msg.topics.map(String) : [];
        const unknown = wanted.filter((t) => !topics.includes(t));
        if (unknown.length) {
          return void ws.send(
            JSON.stringify({ seq: ++ws.data.seq, type: "error", message: `Unknown topic "${unknown[0]}": known are ${topics.join(", ")}` }),
          );
        }
        ws.data.topics = wanted.length ? new Set(wanted) : null;
        ws.send(JSON.stringify({ seq: ++ws.data.seq, type: "subscribed", topics: wanted }));
      },
    },
  };
}

/**
 * @module The relay every daemon runs when a gateway is configured: a WebSocket to `<url>/relay` carrying
 * `hello`, a `snapshot`, then every bus event. It reconnects with backoff (1 s doubling to 60 s, ±10 %
 * jitter, reset once connected). While disconnected, events wait in a queue of at most 1000; on overflow the
 * queue is dropped and the next connection sends a fresh snapshot instead, so memory stays bounded through
 * any outage.
 */
import type { BusEvent } from "../../core/events.ts";
import type { Context } from "../../core/feature.ts";

export const QUEUE_LIMIT = 1000;

export interface RelayStatus {
  url: string;
  project: string;
  connected: boolean;
  last_connected_at: string | null;
  last_error: string | null;
  queued: number;
  dropped_for_snapshot: number;
}

export interface Relay {
  status(): RelayStatus;
  stop(): void;
}

export interface RelayOptions {
  url: string;
  token: string;
  project: string;
  version: string;
  /** The snapshot sent after every hello. */
  snapshot: () => Promise<unknown>;
}

/** The delay before reconnect attempt `n` (0-based): 1 s doubling to 60 s, ±10 % jitter. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(60_000, 1000 * 2 ** attempt);
  return Math.round(base * (0.9 + 0.2 * random()));
}

export function startRelay(ctx: Context, options: RelayOptions): Relay {
  const target = options.url.replace(/^http/, "ws").replace(/\/+$/, "") + "/relay";
  const queue: BusEvent[] = [];
  const state: RelayStatus = {
    url: options.url,
    project: options.project,
    connected: false,
    last_connected_at: null,
    last_error: null,
    queued: 0,
    dropped_for_snapshot: 0,
  };
  let ws: WebSocket | null = null;
  let attempt = 0;
  let stopped = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const unsubscribe = ctx.bus.on(
    "*",
    (event) => {
      if (ws && state.connected) return void ws.send(JSON.stringify({ type: "event", event }));
      if (queue.length >= QUEUE_LIMIT) {
        state.dropped_for_snapshot += queue.length + 1;
        queue.length = 0; // the snapshot sent on reconnect stands for all of it
      } else queue.push(event);
      state.queued = queue.length;
    },
    { name: "gateway-relay" },
  );

  function connect() {
    if (stopped) return;
    const socket = new WebSocket(target, { headers: { authorization: `Bearer ${options.token}` } } as never);
    ws = socket;
    socket.onopen = async () => {
      socket.send(JSON.stringify({ type: "hello", project: options.project, machine_id: ctx.machineId, version: options.version }));
      try {
        socket.send(JSON.stringify({ type: "snapshot", at: new Date(ctx.clock.now()).toISOString(), ...((await options.snapshot()) as object) }));
      } catch (err) {
        state.last_error = `Cannot build the snapshot: ${(err as Error).message}`;
      }
      for (const event of queue.splice(0)) socket.send(JSON.stringify({ type: "event", event }));
      state.queued = 0;
      state.connected = true;
      state.last_connected_at = new Date().toISOString();
      attempt = 0;
    };
    socket.onclose = (e) => {
      state.connected = false;
      if (e.code !== 1000) state.last_error = `Gateway closed the relay: ${e.code}${e.reason ? ` ${e.reason}` : ""}`;
      if (e.code >= 4400 && e.code < 4500) ctx.log.warnOnce(`relay:${e.code}`, state.last_error!);
      if (stopped) return;
      retry = setTimeout(connect, backoffMs(attempt++));
      retry.unref?.();
    };
    socket.onerror = () => {
      state.last_error = `Cannot reach the gateway at ${options.url}`;
    };
  }

  connect();
  return {
    status: () => ({ ...state }),
    stop() {
      stopped = true;
      clearTimeout(retry);
      unsubscribe();
      ws?.close(1000, "daemon stopping");
    },
  };
}

/**
 * @module The relay every daemon runs when a gateway is configured: a WebSocket to `<url>/relay` (the project in
 * `X-Drover-Project`, its token as the bearer) carrying `hello`, a `snapshot`, then every bus event — no item
 * bodies, the snapshot built to fit the frame limit (./frames.ts). It reconnects with backoff (1 s doubling to
 * 60 s, ±10 % jitter, reset once connected). Memory stays bounded through any outage and any slow gateway:
 * - while disconnected, or while a snapshot is on its way, events wait in a queue of at most 1000 frames and
 *   4 MiB; on overflow the queue is dropped and a fresh snapshot stands for it;
 * - while the gateway reads too slowly (more than 1 MiB beyond the last snapshot waits in the socket), events
 *   are dropped and counted; once the socket has drained, a fresh snapshot is sent and events flow again.
 */
import type { Context } from "../../core/feature.ts";
import { eventFrame, PROJECT_HEADER, type SnapshotParts, type SnapshotSummary, snapshotFrame } from "./frames.ts";

export const QUEUE_LIMIT = 1000;
export const QUEUE_BYTES = 4 * 1024 * 1024;
/** Bytes beyond the last snapshot that may wait in the socket before events pause. */
export const MAX_BUFFERED = 1024 * 1024;
const DRAIN_POLL_MS = 100;

export interface RelayStatus {
  url: string;
  project: string;
  /** The socket is open and the hello and a snapshot were sent. */
  connected: boolean;
  /** Events are held back: the gateway reads too slowly. A fresh snapshot follows once the socket drains. */
  paused: boolean;
  last_connected_at: string | null;
  last_error: string | null;
  /** Events waiting for the connection, or for the snapshot being sent. */
  queued: number;
  /** Bytes handed to the socket that the gateway has not taken yet. */
  buffered_bytes: number;
  /** Events not sent since the daemon started (queue overflow, paused, too big); snapshots stand for them. */
  dropped: number;
  last_snapshot: SnapshotSummary | null;
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
  /** What the snapshot sent after every hello, and after every pause, is made of. */
  snapshot: () => Promise<SnapshotParts>;
}

/** The delay before reconnect attempt `n` (0-based): 1 s doubling to 60 s, ±10 % jitter. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(60_000, 1000 * 2 ** attempt);
  return Math.round(base * (0.9 + 0.2 * random()));
}

export function startRelay(ctx: Context, options: RelayOptions): Relay {
  const target = options.url.replace(/^http/, "ws").replace(/\/+$/, "") + "/relay";
  const queue: string[] = [];
  let queuedBytes = 0;
  let socket: WebSocket | null = null;
  /** down: no socket; syncing: a snapshot is on its way (events queue); live: events flow; paused: events drop. */
  let phase: "down" | "syncing" | "live" | "paused" = "down";
  let resnapshot = false;
  let snapshotBytes = 0;
  let attempt = 0;
  let stopped = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let drainPoll: ReturnType<typeof setInterval> | undefined;
  const info = {
    last_connected_at: null as string | null,
    last_error: null as string | null,
    dropped: 0,
    last_snapshot: null as SnapshotSummary | null,
  };

  const unsubscribe = ctx.bus.on(
    "*",
    (event) => {
      const frame = eventFrame(event);
      if (!frame) info.dropped++;
      else if (phase === "live") send(socket!, frame);
      else if (phase === "paused") info.dropped++;
      else enqueue(frame);
    },
    { name: "gateway-relay" },
  );

  function enqueue(frame: string) {
    if (queue.length >= QUEUE_LIMIT || queuedBytes + frame.length > QUEUE_BYTES) {
      info.dropped += queue.length + 1;
      queue.length = 0;
      queuedBytes = 0;
      resnapshot = true; // a snapshot stands for all of it
      return;
    }
    queue.push(frame);
    queuedBytes += frame.length;
  }

  function send(s: WebSocket, frame: string) {
    if (s.bufferedAmount <= snapshotBytes + MAX_BUFFERED) return void s.send(frame);
    phase = "paused";
    info.dropped++;
    clearInterval(drainPoll);
    drainPoll = setInterval(() => {
      if (s !== socket || s.readyState !== WebSocket.OPEN) return clearInterval(drainPoll);
      if (s.bufferedAmount > 0) return;
      clearInterval(drainPoll);
      void sync(s);
    }, DRAIN_POLL_MS);
    drainPoll.unref?.();
  }

  /** Sends a snapshot, then the events queued meanwhile; again while the queue overflowed in between. */
  async function sync(s: WebSocket) {
    phase = "syncing";
    do {
      resnapshot = false;
      const at = new Date(ctx.clock.now()).toISOString();
      try {
        const snap = snapshotFrame(at, await options.snapshot());
        if (s !== socket || s.readyState !== WebSocket.OPEN) return;
        s.send(snap.text);
        snapshotBytes = snap.summary.bytes;
        info.last_snapshot = snap.summary;
      } catch (err) {
        info.last_error = `Cannot build the snapshot: ${(err as Error).message}`;
      }
    } while (resnapshot);
    if (s !== socket || s.readyState !== WebSocket.OPEN) return;
    const waiting = queue.splice(0);
    queuedBytes = 0;
    phase = "live";
    for (const frame of waiting) {
      if (phase === "live") send(s, frame);
      else info.dropped++;
    }
  }

  function connect() {
    if (stopped) return;
    let s: WebSocket;
    try {
      s = new WebSocket(target, {
        headers: { authorization: `Bearer ${options.token}`, [PROJECT_HEADER]: options.project },
      } as never);
    } catch (err) {
      // a header value that is not plain text, or a malformed URL: no retry can fix the configuration
      info.last_error = `Cannot open the relay to "${options.url}": ${(err as Error).message} (check gateway.url, gateway.project and gateway.token)`;
      return ctx.log.warnOnce("relay:config", info.last_error);
    }
    socket = s;
    let opened = false;
    s.onopen = () => {
      opened = true;
      attempt = 0;
      info.last_connected_at = new Date().toISOString();
      s.send(
        JSON.stringify({
          type: "hello",
          project: options.project,
          machine_id: ctx.machineId,
          version: options.version,
        }),
      );
      void sync(s);
    };
    s.onerror = (e) => {
      // Bun's message for a refused upgrade: "… failed: Expected 101 status code: 401"
      const status = /Expected 101 status code: (\d+)/.exec(String((e as ErrorEvent).message ?? ""))?.[1];
      if (!status) return void (info.last_error = `Cannot reach the gateway at ${options.url}`);
      info.last_error = `Gateway refused the relay: HTTP ${status}${status === "401" || status === "404" ? " (check gateway.project and gateway.token)" : ""}`;
      ctx.log.warnOnce(`relay:${status}`, info.last_error);
    };
    s.onclose = (e) => {
      if (s !== socket) return;
      phase = "down";
      snapshotBytes = 0;
      clearInterval(drainPoll);
      if (opened && e.code !== 1000)
        info.last_error = `Gateway closed the relay: ${e.code}${e.reason ? ` ${e.reason}` : ""}`;
      if (e.code >= 4400 && e.code < 4500) ctx.log.warnOnce(`relay:${e.code}`, info.last_error!);
      if (stopped) return;
      retry = setTimeout(connect, backoffMs(attempt++));
      retry.unref?.();
    };
  }

  connect();
  return {
    status: () => ({
      url: options.url,
      project: options.project,
      connected: phase === "live" || phase === "paused",
      paused: phase === "paused",
      last_connected_at: info.last_connected_at,
      last_error: info.last_error,
      queued: queue.length,
      buffered_bytes: phase === "down" ? 0 : (socket?.bufferedAmount ?? 0),
      dropped: info.dropped,
      last_snapshot: info.last_snapshot,
    }),
    stop() {
      stopped = true;
      clearTimeout(retry);
      clearInterval(drainPoll);
      unsubscribe();
      socket?.close(1000, "daemon stopping");
    },
  };
}

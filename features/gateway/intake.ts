/**
 * @module The gateway's side of `/relay`. The project and its token are checked at the upgrade, before a frame
 * is read: `X-Drover-Project` names the project, `Authorization: Bearer` carries its token; a wrong or missing
 * one is answered 401 (404 for an unknown project) and no socket is opened. Then the hello must come within
 * 5 s and name the same project. Every later frame is validated (./frames.ts, and each event against its own
 * type's schema) before use: an invalid one is dropped and counted, never applied or passed on.
 */
import type { Server, ServerWebSocket } from "bun";
import type { Bus } from "../../core/bus.ts";
import { DroverError } from "../../core/errors.ts";
import { type BusEvent, eventDef } from "../../core/events.ts";
import type { Logger } from "../../core/logger.ts";
import { checkToken, errorResponse } from "../../web/guard.ts";
import { guarded, type WsLimit } from "../../web/ws.ts";
import { eventFrameSchema, helloSchema, itemViewSchema, PROJECT_HEADER, snapshotSchema } from "./frames.ts";
import type { GatewayState } from "./state.ts";

const HELLO_WITHIN_MS = 5000;

export interface RelayData {
  kind: "relay";
  project: string;
  machine?: string;
  timer?: ReturnType<typeof setTimeout>;
}

export interface IntakeStats {
  /** Frames dropped as invalid. */
  malformed: number;
  /** Relays refused: at the upgrade, or closed for a missing or wrong hello. */
  refused: number;
}

export interface Intake {
  /** Upgrades an authenticated relay; otherwise the response to give (401, 404, 503). */
  upgrade(req: Request, server: Server<RelayData>): Response | undefined;
  open(ws: ServerWebSocket<RelayData>): void;
  message(ws: ServerWebSocket<RelayData>, raw: string | Buffer): void;
  close(ws: ServerWebSocket<RelayData>): void;
}

export function createIntake(deps: {
  state: GatewayState;
  bus: Bus;
  tokens: Map<string, string>;
  limit: WsLimit;
  log: Logger;
  stats: IntakeStats;
}): Intake {
  const { state, bus, tokens, limit, log, stats } = deps;

  function refused(err: DroverError, project: string): Response {
    stats.refused++;
    // keyed by known project only: unauthenticated callers choose the names
    log.warnOnce(`refused:${err.code}:${tokens.has(project) ? project : "?"}`, `Relay refused: ${err.message}`);
    return errorResponse(err);
  }

  function refuse(ws: ServerWebSocket<RelayData>, code: number, reason: string) {
    stats.refused++;
    log.warnOnce(`refused:${ws.data.project}:${code}`, `Relay of "${ws.data.project}" refused: ${reason}`);
    ws.close(code, reason);
  }

  function malformed(data: RelayData, reason: string) {
    stats.malformed++;
    log.warnOnce(
      `malformed:${data.project}:${reason}`,
      `Dropped a relay frame from "${data.project}" (${data.machine}): ${reason}`,
    );
  }

  function onFrame(ws: ServerWebSocket<RelayData>, raw: string | Buffer) {
    const data = ws.data;
    const frame = _json(raw);
    if (!data.machine) {
      const hello = helloSchema.safeParse(frame);
      if (!hello.success || hello.data.project !== data.project)
        return refuse(ws, 4400, `Expected a hello for project "${data.project}" first`);
      if (!state.connect(data.project, hello.data.machine_id, Date.now()))
        return refuse(ws, 4409, `Too many machines with relays for project "${data.project}"`);
      clearTimeout(data.timer);
      data.machine = hello.data.machine_id;
      return;
    }
    const type = (frame as { type?: unknown } | null)?.type;
    if (type === "snapshot") {
      const snap = snapshotSchema.safeParse(frame);
      if (!snap.success) return malformed(data, "an invalid snapshot");
      return state.snapshot(data.project, data.machine, snap.data, Date.now());
    }
    const event = type === "event" ? _event(frame) : null;
    if (!event) return malformed(data, type === "event" ? "an invalid event" : "not a snapshot or an event");
    if (!state.event(data.project, data.machine, event, Date.now()))
      return malformed(data, `a "${event.type}" event the gateway cannot store`);
    bus.deliver({
      ...event,
      project: data.project,
      machine_id: event.machine_id ?? data.machine,
    } as unknown as BusEvent);
  }

  return {
    upgrade(req, server) {
      const project = req.headers.get(PROJECT_HEADER) ?? "";
      if (!project)
        return refused(
          new DroverError("unauthorized", `Missing the "${PROJECT_HEADER}" header naming the relay's project`),
          project,
        );
      const token = tokens.get(project);
      if (token === undefined)
        return refused(
          new DroverError("not_found", `Unknown project ${JSON.stringify(project.slice(0, 64))}`),
          project,
        );
      if (!checkToken(req, token))
        return refused(new DroverError("unauthorized", `Wrong token for project "${project}"`), project);
      if (!limit.take()) return limit.busy("max_ws_clients in gateway.toml");
      if (server.upgrade(req, { data: { kind: "relay", project } })) return undefined;
      limit.release();
      return errorResponse(new DroverError("invalid_input", "Expected a WebSocket upgrade"));
    },
    open(ws) {
      const data = ws.data;
      data.timer = setTimeout(() => !data.machine && refuse(ws, 4400, "No hello within 5 s"), HELLO_WITHIN_MS);
    },
    message(ws, raw) {
      guarded(log, ws, "relay message", () => onFrame(ws, raw));
    },
    close(ws) {
      limit.release();
      clearTimeout(ws.data.timer);
      if (ws.data.machine) state.disconnect(ws.data.project, ws.data.machine, Date.now());
    },
  };
}

// --- internal ---

function _json(raw: string | Buffer): unknown {
  if (typeof raw !== "string") return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

/**
 * The event of an event frame with only the fields its type's schema knows (an item as the gateway's view, no
 * body), or null when it is invalid.
 */
function _event(frame: unknown): (Record<string, unknown> & { type: string; machine_id?: string }) | null {
  const envelope = eventFrameSchema.safeParse(frame);
  if (!envelope.success) return null;
  const { type, at, origin, machine_id } = envelope.data.event;
  const fields = eventDef(type)?.schema.safeParse((frame as { event: unknown }).event);
  if (!fields) return null;
  if (!fields.success) return null;
  const event: Record<string, unknown> & { type: string; machine_id?: string } = {
    type,
    at,
    origin: origin ?? "local",
    ...(machine_id === undefined ? {} : { machine_id }),
    ...fields.data,
  };
  if (event.item != null) {
    const item = itemViewSchema.safeParse(event.item);
    if (!item.success || item.data.id !== event.item_id) return null;
    event.item = item.data;
  }
  return event;
}

/**
 * @module Event types: each one a zod schema and a WebSocket topic. A feature declares its own in its contract
 * (core/contract.ts); `defineFeature` registers them, and `bus.publish` validates the fields against the schema.
 * Core declares only the runtime's own events.
 */
import { z } from "zod";
import type { ContractEvents } from "./contract.ts";
import { DroverError } from "./errors.ts";

export interface EventDef {
  topic: string;
  schema: z.ZodObject;
}

export const coreEvents = {
  gap: { topic: "system", schema: z.object({ dropped: z.number().int() }) },
  reconciled: {
    topic: "system",
    schema: z.object({ feature: z.string(), report: z.record(z.string(), z.unknown()) }),
  },
  /** Committed config values with effects wait for `drover trust` on this machine. */
  config_untrusted: { topic: "system", schema: z.object({ keys: z.array(z.string()), command: z.string() }) },
  /** This machine's approvals changed (`drover trust` in another process): the values in force were updated. */
  config_retrusted: { topic: "system", schema: z.object({ waiting: z.array(z.string()) }) },
} satisfies Record<string, EventDef>;

/** Every event type by name: the runtime's and every feature's contract's. */
export type EventType = keyof ContractEvents & string;
export type EventFields<T extends EventType> = z.input<ContractEvents[T]["schema"]>;

/** What caused an event: set when a timer or trigger action led to it, so trigger chains can be bounded. */
export interface EventCause {
  trigger_id?: string;
  timer_id?: string;
  depth: number;
  /** The chain this event belongs to (the id of its originating event's first firing): bounds a chain's width. */
  chain?: string;
}

/** An event as subscribers, WebSocket clients and the gateway see it. */
export type BusEvent<T extends EventType = EventType> = {
  type: T;
  at: string;
  origin: "local" | "remote";
  cause?: EventCause;
} & EventFields<T>;

/** Adds event types to the registry; a name another declaration holds is a programming error. */
export function registerEvents(defs: Record<string, EventDef>): void {
  for (const [type, def] of Object.entries(defs)) {
    const known = _registry.get(type);
    if (known && known !== def) throw new DroverError("internal", `Cannot declare event "${type}" twice`);
    _registry.set(type, def);
  }
}

/** The declaration of an event type, or undefined for a name nobody declared (`"__proto__"` included). */
export function eventDef(type: string): EventDef | undefined {
  return _registry.get(type);
}

export function eventTypeNames(): string[] {
  return [..._registry.keys()];
}

/** The WebSocket topics clients may subscribe to. */
export function topics(): string[] {
  return [...new Set([..._registry.values()].map((e) => e.topic))];
}

// --- internal ---

const _registry = new Map<string, EventDef>(Object.entries(coreEvents));

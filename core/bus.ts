/**
 * @module The typed event bus. Each subscriber has its own bounded queue, drained in order; a throwing
 * subscriber is logged and isolated; one that falls behind loses the overflow and is told so with a
 * `gap` event carrying the count, then continues. Nothing is dropped without a `gap`.
 */
import { type Clock, iso } from "./clock.ts";
import { DroverError } from "./errors.ts";
import { type BusEvent, type EventCause, type EventFields, type EventType, eventDef } from "./events.ts";
import type { Logger } from "./logger.ts";
import { currentCall } from "./ops.ts";

export type Subscriber = (event: BusEvent) => void | Promise<void>;

export interface PublishOptions {
  origin?: "local" | "remote";
  cause?: EventCause;
}

export interface Bus {
  publish<T extends EventType>(type: T, fields: EventFields<T>, options?: PublishOptions): BusEvent<T>;
  /** Subscribes to one event type, or to all with "*". Returns the unsubscribe function. */
  on(type: EventType | "*", subscriber: Subscriber, options?: { name?: string; queueLimit?: number }): () => void;
  /** Delivers an event made elsewhere (another process) as it is, without a new envelope. */
  deliver(event: BusEvent): void;
  /** Resolves when every subscriber queue is empty (tests and orderly shutdown). */
  idle(): Promise<void>;
}

export interface BusOptions {
  clock: Clock;
  log: Logger;
  /** Events a subscriber may have waiting before the overflow is dropped (default 10,000). */
  queueLimit?: number;
  /** Called synchronously with every published event (a CLI process relays them to the daemon). */
  forward?: (event: BusEvent) => void;
}

export function createBus(options: BusOptions): Bus {
  const subs = new Set<_Sub>();
  const idleWaiters: Array<() => void> = [];

  function _checkIdle() {
    for (const s of subs) if (s.running || s.queue.length) return;
    while (idleWaiters.length) idleWaiters.shift()!();
  }

  async function _drain(sub: _Sub) {
    sub.running = true;
    while (sub.queue.length) {
      const event = sub.queue.shift()!;
      try {
        await sub.fn(event);
      } catch (err) {
        options.log.error(`Subscriber "${sub.name}" failed on "${event.type}"`, { error: err as Error });
      }
      if (!sub.queue.length && sub.dropped) _enqueueGap(sub);
    }
    sub.running = false;
    _checkIdle();
  }

  function _enqueueGap(sub: _Sub) {
    sub.queue.push(_envelope("gap", { dropped: sub.dropped }, {}, options.clock) as BusEvent);
    sub.dropped = 0;
  }

  function deliver(event: BusEvent) {
    for (const sub of subs) {
      if (sub.type !== "*" && sub.type !== event.type) continue;
      if (sub.queue.length >= sub.limit) {
        sub.dropped++;
        continue;
      }
      if (sub.dropped) _enqueueGap(sub);
      sub.queue.push(event);
      if (!sub.running) {
        sub.running = true;
        queueMicrotask(() => void _drain(sub));
      }
    }
  }

  return {
    publish(type, fields, opts = {}) {
      const def = eventDef(type);
      if (!def) throw new DroverError("internal", `Cannot publish "${type}": no feature declares that event`);
      const parsed = def.schema.parse(fields) as EventFields<typeof type>;
      // an event an op publishes while serving a timer's or trigger's action belongs to that chain, whoever publishes
      // it (a heartbeat trigger whose action is a heartbeat must stay bounded); an explicit cause (even none) wins
      const cause = "cause" in opts ? opts.cause : currentCall()?.cause;
      const event = _envelope(type, parsed, { ...opts, cause }, options.clock);
      options.forward?.(event as BusEvent);
      deliver(event as BusEvent);
      return event;
    },
    deliver,
    on(type, fn, opts = {}) {
      const sub: _Sub = {
        type,
        fn,
        name: opts.name ?? fn.name ?? "anonymous",
        limit: opts.queueLimit ?? options.queueLimit ?? 10_000,
        queue: [],
        dropped: 0,
        running: false,
      };
      subs.add(sub);
      return function unsubscribe() {
        subs.delete(sub);
        _checkIdle();
      };
    },
    idle() {
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        _checkIdle();
      });
    },
  };
}

// --- internal ---

interface _Sub {
  type: EventType | "*";
  fn: Subscriber;
  name: string;
  limit: number;
  queue: BusEvent[];
  dropped: number;
  running: boolean;
}

function _envelope<T extends EventType>(
  type: T,
  fields: EventFields<T>,
  opts: PublishOptions,
  clock: Clock,
): BusEvent<T> {
  const event = { type, at: iso(clock.now()), origin: opts.origin ?? "local", ...fields } as BusEvent<T>;
  if (opts.cause) event.cause = opts.cause;
  return event;
}

/**
 * @module Time as the features see it. Production uses the system clock; tests inject a manual clock and
 * drive it, so nothing time-dependent needs a sleep.
 */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface ManualClock extends Clock {
  set(ms: number | string): void;
  advance(ms: number): void;
}

/** A clock that moves only when told to. */
export function manualClock(start: number | string = "2026-01-01T00:00:00Z"): ManualClock {
  let current = typeof start === "string" ? Date.parse(start) : start;
  return {
    now: () => current,
    set(ms) {
      current = typeof ms === "string" ? Date.parse(ms) : ms;
    },
    advance(ms) {
      current += ms;
    },
  };
}

/** ISO-8601 UTC text of a clock reading. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * @module Time as the features see it. Production uses the system clock; tests inject a manual clock and
 * drive it, so nothing time-dependent needs a sleep.
 */
import { readFileSync } from "node:fs";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * The process's clock: the system's, or, with `DROVER_CLOCK_FILE`, the system's plus the milliseconds that file
 * holds. The chaos run jumps every daemon's clock by rewriting that file; the offset is re-read at most every
 * 100 ms, so a jump lands mid-run without a restart. A missing or unreadable file counts as no offset.
 */
export function processClock(env: Record<string, string | undefined> = process.env): Clock {
  const file = env.DROVER_CLOCK_FILE;
  if (!file) return systemClock;
  let offset = 0;
  let readAt = -Infinity;
  return {
    now() {
      if (performance.now() - readAt >= 100) {
        readAt = performance.now();
        offset = _readOffset(file);
      }
      return Date.now() + offset;
    },
  };
}

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

function _readOffset(file: string): number {
  try {
    const ms = Number(readFileSync(file, "utf8").trim());
    return Number.isFinite(ms) ? ms : 0;
  } catch {
    return 0;
  }
}

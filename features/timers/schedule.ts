/**
 * @module When a timer fires: one-shot (`at`, `in`), interval (`every`, anchored at creation) or cron
 * (`Bun.cron.parse`, with `tz`). Pure: time comes in as numbers.
 */
import { DroverError } from "../../core/errors.ts";

export type Schedule =
  | { kind: "at"; at: number }
  | { kind: "every"; every_ms: number; anchor: number }
  | { kind: "cron"; cron: string; tz?: string };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "2h", "1d", "500ms" → milliseconds. */
export function parseDuration(text: string, field: string): number {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m)
    throw new DroverError("invalid_input", `Invalid "${field}": "${text}" is not a duration like "90s", "15m" or "2h"`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** The first occurrence strictly after `after`, or null when there is none. */
export function nextAfter(s: Schedule, after: number): number | null {
  switch (s.kind) {
    case "at":
      return s.at > after ? s.at : null;
    case "every":
      return s.anchor + (Math.floor((after - s.anchor) / s.every_ms) + 1) * s.every_ms;
    case "cron":
      return Bun.cron.parse(s.cron, after, s.tz ? { tz: s.tz } : undefined)?.getTime() ?? null;
  }
}

/** Checks a cron expression and time zone now, so a bad one is refused when the timer is made. */
export function checkCron(cron: string, tz: string | undefined, now: number): number {
  let next: Date | null;
  try {
    next = Bun.cron.parse(cron, now, tz ? { tz } : undefined);
  } catch (err) {
    throw new DroverError("invalid_input", `Invalid "cron": ${(err as Error).message.replace(/^Bun\.cron: /, "")}`);
  }
  if (!next) throw new DroverError("invalid_input", `Invalid "cron": "${cron}" never fires`);
  return next.getTime();
}

/**
 * The occurrences from `first` up to `now` (inclusive), at most `cap` of them, the latest kept, and how many
 * there were in all.
 */
export function dueBetween(s: Schedule, first: number, now: number, cap: number): { due: number[]; total: number } {
  if (s.kind === "at") return { due: first <= now ? [first] : [], total: first <= now ? 1 : 0 };
  if (s.kind === "every") {
    const total = first > now ? 0 : Math.floor((now - first) / s.every_ms) + 1;
    const start = Math.max(0, total - cap);
    return { due: Array.from({ length: total - start }, (_, i) => first + (start + i) * s.every_ms), total };
  }
  const due: number[] = [];
  let total = 0;
  for (let t: number | null = first; t !== null && t <= now; t = nextAfter(s, t)) {
    due.push(t);
    total++;
    if (due.length > cap) due.shift();
    if (total > 1_000_000) break; // a year of minutes: enough to know it was many
  }
  return { due, total };
}

/**
 * @module The 1 s ticker: fires on whole wall-clock seconds, never overlaps itself (a tick still running
 * when the next second comes makes that one count as skipped), and survives a throwing tick.
 */
import type { Logger } from "./logger.ts";

export interface TickerStats {
  ticks: number;
  skipped: number;
  errors: number;
}

export interface Ticker {
  start(): void;
  stop(): void;
  readonly stats: TickerStats;
}

export interface TickerOptions {
  log: Logger;
  /** Milliseconds between ticks (1000 in production). */
  periodMs?: number;
}

export function createTicker(onTick: () => void | Promise<void>, options: TickerOptions): Ticker {
  const period = options.periodMs ?? 1000;
  const stats: TickerStats = { ticks: 0, skipped: 0, errors: 0 };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let stopped = true;

  function schedule() {
    if (stopped) return;
    timer = setTimeout(fire, period - (Date.now() % period));
    timer.unref?.();
  }

  async function fire() {
    schedule();
    if (running) {
      stats.skipped++;
      return;
    }
    running = true;
    try {
      await onTick();
      stats.ticks++;
    } catch (err) {
      stats.errors++;
      options.log.error("Tick failed", { error: err as Error });
    } finally {
      running = false;
    }
  }

  return {
    stats,
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

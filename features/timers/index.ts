/**
 * @module Feature `timers`: actions at a time, on an interval or a cron schedule, in SQLite with
 * `next_fire_at` indexed (a tick costs the same with 10 or 100,000 timers that are not due), with defined
 * catch-up after downtime and never a second firing of one occurrence.
 */
import { defineFeature } from "../../core/feature.ts";
import { timersContract } from "./contract.ts";
import { reportInterrupted, runFirings, takeDue } from "./fire.ts";
import { timerOps } from "./ops.ts";

/** Firings whose actions are still running; `stop` waits for them a little, tests wait for them fully. */
export interface TimerService {
  inFlight: Set<Promise<void>>;
  settle(): Promise<void>;
}

declare module "../../core/feature.ts" {
  interface Services {
    timers: TimerService;
  }
  interface OpMap {
    "timer.add": (typeof timerOps)["timer.add"];
    "timer.list": (typeof timerOps)["timer.list"];
    "timer.cancel": (typeof timerOps)["timer.cancel"];
  }
}

export default defineFeature({
  name: "timers",
  ...timersContract,
  localOnly: ["timers"],
  migrations: [
    `CREATE TABLE timers (id TEXT PRIMARY KEY, label TEXT, schedule TEXT NOT NULL, action TEXT NOT NULL, catchup TEXT NOT NULL,
       next_fire_at INTEGER, state TEXT NOT NULL, created_at TEXT NOT NULL, fired_count INTEGER NOT NULL DEFAULT 0, last_fired_at TEXT);
     CREATE INDEX timers_due ON timers (next_fire_at) WHERE state = 'active';
     CREATE TABLE timer_firings (id INTEGER PRIMARY KEY AUTOINCREMENT, timer_id TEXT NOT NULL, due_at INTEGER NOT NULL,
       fired_at INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, finished_at INTEGER);
     CREATE INDEX timer_firings_running ON timer_firings (status) WHERE status = 'running';`,
    // the cause of the call that made the timer (a trigger's action): its firings stay in that chain
    "ALTER TABLE timers ADD COLUMN cause TEXT",
  ],
  setup(ctx) {
    const inFlight = new Set<Promise<void>>();
    ctx.services.timers = { inFlight, settle: async () => void (await Promise.all([...inFlight])) };
  },
  ops: timerOps,
  start(ctx) {
    reportInterrupted(ctx);
  },
  async stop(ctx) {
    await Promise.race([ctx.services.timers.settle(), Bun.sleep(2000)]);
  },
  tick(ctx) {
    const firings = takeDue(ctx);
    if (!firings.length) return;
    const { inFlight } = ctx.services.timers;
    const running = runFirings(ctx, firings).finally(() => inFlight.delete(running));
    inFlight.add(running);
  },
});

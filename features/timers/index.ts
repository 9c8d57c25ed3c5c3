/**
 * @module Feature `timers`: actions at a time, on an interval or a cron schedule, in SQLite with
 * `next_fire_at` indexed (a tick costs the same with 10 or 100,000 timers that are not due), with defined
 * catch-up after downtime and never a second firing of one occurrence.
 */
import { defineFeature } from "../../core/feature.ts";
import { timersContract } from "./contract.ts";
import { reportInterrupted, runFirings, takeDue } from "./fire.ts";
import { timerOps } from "./ops.ts";

declare module "../../core/feature.ts" {
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
  ops: timerOps,
  start(ctx) {
    reportInterrupted(ctx);
  },
  tick(ctx) {
    const firings = takeDue(ctx);
    // off the ticker; tracked with the actions, so waiting for them (`settle`, a closing runtime) waits for this too
    if (firings.length) ctx.services.actions.track(runFirings(ctx, firings));
  },
});

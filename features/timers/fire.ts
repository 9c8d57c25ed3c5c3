/**
 * @module Firing timers. What is due is taken in one transaction that records each occurrence as fired and
 * advances `next_fire_at` — before any action runs — so a crash can never fire an occurrence twice. The
 * actions then run off the ticker (a hanging webhook delays nothing else); an occurrence whose action was
 * cut short by a crash is reported at the next start as `timer_interrupted`.
 */

import { type Action, newChainId } from "../../core/actions.ts";
import { iso } from "../../core/clock.ts";
import type { EventCause } from "../../core/events.ts";
import type { Context } from "../../core/feature.ts";
import { dueBetween, nextAfter, type Schedule } from "./schedule.ts";

/** An occurrence more than this overdue was missed (downtime); a tick reaches the on-time ones within ~1 s. */
export const MISSED_MS = 5000;
/** `catchup = "all"` fires at most this many missed occurrences. */
export const CATCHUP_CAP = 100;

export interface TimerRow {
  id: string;
  label: string | null;
  schedule: string;
  action: string;
  catchup: "one" | "all" | "skip";
  next_fire_at: number | null;
  state: string;
  /** JSON of the cause of the call that made the timer, when an action made it. */
  cause: string | null;
}

interface Firing {
  id: number;
  timer: TimerRow;
  due_at: number;
  fired_at: number;
}

/** Takes every due occurrence (by the catch-up rule), recorded as fired; returns them to run. */
export function takeDue(ctx: Context): Firing[] {
  const now = ctx.clock.now();
  return ctx.db
    .transaction(() => {
      const rows = ctx.db
        .query<TimerRow, [number]>(
          "SELECT * FROM timers WHERE state = 'active' AND next_fire_at <= ? ORDER BY next_fire_at LIMIT 200",
        )
        .all(now);
      const firings: Firing[] = [];
      const insert = ctx.db.query<{ id: number }, [string, number, number]>(
        "INSERT INTO timer_firings (timer_id, due_at, fired_at, status) VALUES (?, ?, ?, 'running') RETURNING id",
      );
      for (const timer of rows) {
        const schedule = JSON.parse(timer.schedule) as Schedule;
        const { due } = dueBetween(schedule, timer.next_fire_at!, now, CATCHUP_CAP);
        const chosen =
          schedule.kind === "at" || timer.catchup === "all"
            ? due
            : timer.catchup === "one"
              ? due.slice(-1)
              : due.filter((t) => now - t <= MISSED_MS);
        for (const due_at of chosen)
          firings.push({ id: insert.get(timer.id, due_at, now)!.id, timer, due_at, fired_at: now });
        const next = nextAfter(schedule, now);
        ctx.db
          .query(
            "UPDATE timers SET next_fire_at = ?, state = ?, fired_count = fired_count + ?, last_fired_at = COALESCE(?, last_fired_at) WHERE id = ?",
          )
          .run(next, next === null ? "done" : "active", chosen.length, chosen.length ? iso(now) : null, timer.id);
      }
      return firings;
    })
    .immediate();
}

/** Runs the actions, one timer's occurrences in order, without holding up the caller. */
export function runFirings(ctx: Context, firings: Firing[]): Promise<void> {
  const byTimer = new Map<string, Firing[]>();
  for (const f of firings) byTimer.set(f.timer.id, [...(byTimer.get(f.timer.id) ?? []), f]);
  return Promise.all(
    [...byTimer.values()].map(async (list) => {
      for (const f of list) {
        try {
          await _runOne(ctx, f);
        } catch (err) {
          // the daemon stopped while the action ran: the firing stays "running" and is reported at the next start
          ctx.log.debug("Timer action finished after shutdown", { timer: f.timer.id, error: err as Error });
        }
      }
    }),
  ).then(() => undefined);
}

/** Marks occurrences that were running when the last daemon died, and reports each once. */
export function reportInterrupted(ctx: Context): number {
  const rows = ctx.db
    .query<{ timer_id: string; due_at: number; label: string | null }, []>(
      `UPDATE timer_firings SET status = 'interrupted' WHERE status = 'running'
       RETURNING timer_id, due_at, (SELECT label FROM timers WHERE timers.id = timer_firings.timer_id) AS label`,
    )
    .all();
  for (const r of rows) {
    ctx.log.warn(`Timer "${r.timer_id}" was interrupted: its occurrence due at ${iso(r.due_at)} is not run again`);
    ctx.bus.publish("timer_interrupted", { timer_id: r.timer_id, label: r.label, due_at: iso(r.due_at) });
  }
  return rows.length;
}

// --- internal ---

async function _runOne(ctx: Context, f: Firing) {
  const action = JSON.parse(f.timer.action) as Action;
  const context = {
    timer: { timer_id: f.timer.id, label: f.timer.label, due_at: iso(f.due_at), fired_at: iso(f.fired_at) },
  };
  // each firing starts its own trigger chain (what its action causes shares one width budget), unless a trigger's
  // action made the timer: then its firings stay in that chain, so a trigger cannot multiply timers past the budget
  const made = f.timer.cause ? (JSON.parse(f.timer.cause) as EventCause) : null;
  const cause = { timer_id: f.timer.id, depth: made?.depth ?? 0, chain: made?.chain ?? newChainId() };
  const outcome = await ctx.services.actions.run(action, context, cause);
  ctx.db
    .query("UPDATE timer_firings SET status = ?, error = ?, finished_at = ? WHERE id = ?")
    .run(outcome.result, outcome.error ?? null, ctx.clock.now(), f.id);
  const fired = {
    timer_id: f.timer.id,
    label: f.timer.label,
    due_at: iso(f.due_at),
    fired_at: iso(f.fired_at),
    late_ms: f.fired_at - f.due_at,
    result: outcome.result,
    ...(outcome.error ? { error: outcome.error } : {}),
  };
  ctx.bus.publish("timer_fired", fired, { cause });
}

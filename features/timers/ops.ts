/** @module The timers feature's ops: `timer.add`, `timer.list`, `timer.cancel`. */
import { z } from "zod";
import { actionFields, actionFrom } from "../../core/actions.ts";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { defineOp } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import type { TimerRow } from "./fire.ts";
import { checkCron, nextAfter, parseDuration, type Schedule } from "./schedule.ts";

const timerId = z.string().regex(/^tm[a-z2-7]{8}$/, 'must look like "tm" and 8 characters of a-z, 2-7');

export const timerOps = {
  "timer.add": defineOp({
    writes: true,
    http: { method: "POST", path: "/api/timers", status: 201 },
    description: "Schedule an action: once (at, in), every interval, or on a cron schedule",
    input: z.strictObject({
      label: z.string().max(200).optional(),
      at: z.string().max(40).optional().describe("Once, at this ISO time"),
      in: z.string().max(20).optional().describe('Once, after this long: "90s", "15m", "2h"'),
      every: z.string().max(20).optional().describe('Repeatedly, this often: "10m"'),
      cron: z.string().max(120).optional().describe('On a cron schedule: "*/5 * * * *"'),
      tz: z.string().max(64).optional().describe("Time zone of the cron schedule (default UTC)"),
      catchup: z
        .enum(["one", "all", "skip"])
        .default("one")
        .describe("After downtime: fire once, every missed one (≤100), or none"),
      ...actionFields,
    }),
    run(ctx, input, call) {
      const now = ctx.clock.now();
      const schedule = _schedule(input, now);
      const action = actionFrom(input, ctx.ops);
      const next = schedule.kind === "at" ? schedule.at : nextAfter(schedule, now);
      const id = `tm${randomBase32(8)}`;
      ctx.db
        .query(
          "INSERT INTO timers (id, label, schedule, action, catchup, next_fire_at, state, created_at, cause) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
        )
        .run(
          id,
          input.label ?? null,
          JSON.stringify(schedule),
          JSON.stringify(action),
          input.catchup,
          next,
          iso(now),
          call.cause ? JSON.stringify(call.cause) : null,
        );
      const next_fire_at = next === null ? null : iso(next);
      ctx.bus.publish("timer_added", { timer_id: id, label: input.label ?? null, next_fire_at });
      return { id, label: input.label ?? null, next_fire_at };
    },
  }),

  "timer.list": defineOp({
    writes: false,
    http: { method: "GET", path: "/api/timers" },
    description: "Timers, soonest first",
    input: z.strictObject({ all: z.boolean().default(false).describe("Also done and cancelled ones") }),
    run(ctx, input) {
      const rows = ctx.db
        .query<
          TimerRow & {
            fired_count: number;
            last_fired_at: string | null;
            created_at: string;
            last_result: string | null;
          },
          []
        >(
          `SELECT *, (SELECT status FROM timer_firings f WHERE f.timer_id = timers.id ORDER BY f.id DESC LIMIT 1) AS last_result
           FROM timers ${input.all ? "" : "WHERE state = 'active'"} ORDER BY next_fire_at IS NULL, next_fire_at, id`,
        )
        .all();
      return rows.map((r) => ({
        id: r.id,
        label: r.label,
        schedule: describeSchedule(JSON.parse(r.schedule) as Schedule),
        next_fire_at: r.next_fire_at === null ? null : iso(r.next_fire_at),
        catchup: r.catchup,
        action: JSON.parse(r.action),
        state: r.state,
        fired_count: r.fired_count,
        last_fired_at: r.last_fired_at,
        last_result: r.last_result,
        created_at: r.created_at,
      }));
    },
    view: { columns: ["id", "label", "schedule", "next_fire_at", "catchup", "fired_count", "last_result", "action"] },
  }),

  "timer.cancel": defineOp({
    writes: true,
    destructive: true,
    http: { method: "DELETE", path: "/api/timers/:id" },
    description: "Cancel a timer",
    input: z.strictObject({ id: timerId }),
    run(ctx, { id }) {
      const changed = ctx.db
        .query("UPDATE timers SET state = 'cancelled' WHERE id = ? AND state = 'active'")
        .run(id).changes;
      if (!changed) throw new DroverError("not_found", `Cannot cancel timer "${id}": no active timer has that id`);
      ctx.bus.publish("timer_cancelled", { timer_id: id });
      return { id, state: "cancelled" };
    },
  }),
};

/** A schedule in words: "every 10m", "cron 0 9 * * 1-5 (Europe/Paris)", "at 2026-…". */
export function describeSchedule(s: Schedule): string {
  if (s.kind === "at") return `at ${iso(s.at)}`;
  if (s.kind === "every") return `every ${_human(s.every_ms)}`;
  return `cron ${s.cron}${s.tz ? ` (${s.tz})` : ""}`;
}

// --- internal ---

function _schedule(
  input: { at?: string; in?: string; every?: string; cron?: string; tz?: string },
  now: number,
): Schedule {
  const given = (["at", "in", "every", "cron"] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1)
    throw new DroverError("invalid_input", 'Invalid schedule: give exactly one of "at", "in", "every" or "cron"');
  if (input.tz !== undefined && input.cron === undefined)
    throw new DroverError("invalid_input", 'Invalid "tz": it goes with "cron"');
  if (input.at !== undefined) {
    const at = Date.parse(input.at);
    if (Number.isNaN(at)) throw new DroverError("invalid_input", `Invalid "at": "${input.at}" is not an ISO time`);
    return { kind: "at", at };
  }
  if (input.in !== undefined) return { kind: "at", at: now + parseDuration(input.in, "in") };
  if (input.every !== undefined) {
    const every_ms = parseDuration(input.every, "every");
    if (every_ms < 1000)
      throw new DroverError("invalid_input", `Invalid "every": "${input.every}" is shorter than the 1 s tick`);
    return { kind: "every", every_ms, anchor: now };
  }
  checkCron(input.cron!, input.tz, now);
  return input.tz ? { kind: "cron", cron: input.cron!, tz: input.tz } : { kind: "cron", cron: input.cron! };
}

function _human(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

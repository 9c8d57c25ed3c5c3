/** @module What timers add to the runtime's name spaces: their events. */
import { z } from "zod";
import { defineEvents } from "../../core/events.ts";

export const timerEvents = defineEvents({
  timer_added: {
    topic: "timers",
    schema: z.object({ timer_id: z.string(), label: z.string().nullable(), next_fire_at: z.string().nullable() }),
  },
  timer_fired: {
    topic: "timers",
    schema: z.object({
      timer_id: z.string(),
      label: z.string().nullable(),
      due_at: z.string(),
      fired_at: z.string(),
      late_ms: z.number(),
      result: z.enum(["ok", "error"]),
      error: z.string().optional(),
    }),
  },
  timer_cancelled: { topic: "timers", schema: z.object({ timer_id: z.string() }) },
  timer_interrupted: {
    topic: "timers",
    schema: z.object({ timer_id: z.string(), label: z.string().nullable(), due_at: z.string() }),
  },
});

type _Events = typeof timerEvents;

declare module "../../core/events.ts" {
  interface EventMap extends _Events {}
}

/** @module What timers add to the runtime's name spaces: their events. */
import { z } from "zod";
import { defineContract } from "../../core/contract.ts";

export const timersContract = defineContract({
  events: {
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
  },
});

declare module "../../core/contract.ts" {
  interface Contracts {
    timers: typeof timersContract;
  }
}

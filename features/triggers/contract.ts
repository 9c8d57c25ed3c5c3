/** @module What triggers add to the runtime's name spaces: their events and config key. */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineEvents } from "../../core/events.ts";

export const triggerEvents = defineEvents({
  trigger_added: {
    topic: "triggers",
    schema: z.object({ trigger_id: z.string(), label: z.string().nullable(), event: z.string() }),
  },
  trigger_fired: {
    topic: "triggers",
    schema: z.object({
      trigger_id: z.string(),
      event_type: z.string(),
      item_id: z.string().nullable(),
      result: z.enum(["ok", "error"]),
      error: z.string().optional(),
    }),
  },
  trigger_cancelled: { topic: "triggers", schema: z.object({ trigger_id: z.string() }) },
  trigger_loop_halted: {
    topic: "triggers",
    schema: z.object({
      trigger_id: z.string(),
      event_type: z.string(),
      item_id: z.string().nullable(),
      depth: z.number().int(),
      /** depth: the chain reached its depth limit; budget: it used up `triggers.max_actions_per_event`. */
      reason: z.enum(["depth", "budget"]),
    }),
  },
});

export const triggerConfig = defineConfig("triggers", {
  max_actions_per_event: z.number().int().min(1).max(10_000).default(100),
});

type _Events = typeof triggerEvents;

declare module "../../core/events.ts" {
  interface EventMap extends _Events {}
}
declare module "../../core/config.ts" {
  interface ConfigParts {
    triggers: typeof triggerConfig;
  }
}

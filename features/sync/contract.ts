/** @module What sync adds to the runtime's name spaces: its events, error codes and the round's config keys. */
import { z } from "zod";
import { defineConfig, secs } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";

export const syncContract = defineContract({
  events: {
    op_rejected: {
      topic: "sync",
      schema: z.object({
        op: z.string(),
        op_id: z.string(),
        item_id: z.string().nullable(),
        code: z.string(),
        reason: z.string(),
      }),
    },
    synced: {
      topic: "sync",
      schema: z.object({
        head: z.string(),
        pushed: z.boolean(),
        fetched: z.number().int(),
        confirmed: z.number().int(),
        rejected: z.number().int(),
      }),
    },
    /** The remote branch had fallen behind this machine's confirmed history (a rewind): it was pushed back. */
    hub_restored: { topic: "sync", schema: z.object({ head: z.string(), remote_was: z.string().nullable() }) },
    /** The remote branch was rewritten: sync stops until `drover sync adopt` or `drover sync restore`. */
    hub_diverged: { topic: "sync", schema: z.object({ local: z.string(), remote: z.string() }) },
  },
  errors: {
    diverged: 409,
    offline: 503,
  },
  config: [
    defineConfig("hub", {
      sync_interval_secs: secs.default(10),
      /** Heartbeats-only rounds at most this often. */
      presence_secs: secs.default(60),
      network_timeout_secs: secs.default(20),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    sync: typeof syncContract;
  }
}

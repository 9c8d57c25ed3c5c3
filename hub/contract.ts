/** @module What the hub layer adds to the runtime's name spaces: its event and the `[hub]` keys it reads. */
import { z } from "zod";
import { defineConfig } from "../core/config.ts";
import { defineContract } from "../core/contract.ts";

export const hubContract = defineContract({
  events: {
    hub_invalid_file: { topic: "sync", schema: z.object({ path: z.string(), reason: z.string() }) },
  },
  config: [
    defineConfig("hub", {
      /** A remote name or URL; "" = local only (what `init --local` writes). */
      remote: z.string().default("origin"),
      branch: z.string().min(1).default("drover/hub"),
      /** Larger hub files from the remote are skipped (SPEC §12). */
      max_file_bytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      /** Decided ops (confirmed or rejected) are forgotten after this long: `state.db` does not grow with use. */
      outbox_retention_days: z.number().min(0.001).max(3650).default(7),
    }),
  ],
});

declare module "../core/contract.ts" {
  interface Contracts {
    hub: typeof hubContract;
  }
}

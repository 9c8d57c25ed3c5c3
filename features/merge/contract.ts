/**
 * @module What merge adds to the runtime's name spaces: `[merge]` (SPEC §14) and the events of a merge's life —
 * `merge_started`, `merged`, `merge_failed` (a conflict naming the files, or a failing check with its exit code and
 * the end of its output), `merge_waiting` (the root checkout has local changes, the base diverged from the remote).
 */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";
import type { TrustRule } from "../../core/trust.ts";

export const STRATEGIES = ["merge", "squash", "rebase"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/**
 * The keys of `[merge]` whose values have effects (SPEC §12): a command this machine would run, and a push with its
 * credentials. The defaults have none, so a value in force that has is one this machine approved.
 */
export const MERGE_TRUST: Record<string, TrustRule> = {
  "merge.check": (v) => Array.isArray(v) && v.length > 0,
  "merge.push": (v) => v === true,
};

const item = z.string();

export const mergeContract = defineContract({
  events: {
    merge_started: {
      topic: "items",
      schema: z.object({ item_id: item, base: z.string(), strategy: z.enum(STRATEGIES) }),
    },
    merged: {
      topic: "items",
      schema: z.object({ item_id: item, sha: z.string(), base: z.string(), strategy: z.enum(STRATEGIES) }),
    },
    merge_failed: {
      topic: "items",
      schema: z.object({
        item_id: item,
        kind: z.enum(["conflict", "check"]),
        files: z.array(z.string()).optional(),
        exit_code: z.number().nullable().optional(),
        tail: z.string().optional(),
        blocked: z.boolean(),
      }),
    },
    merge_waiting: { topic: "items", schema: z.object({ item_id: item, reason: z.string() }) },
  },
  config: [
    defineConfig("merge", {
      mode: z.enum(["auto", "manual"]).default("auto"),
      strategy: z.enum(STRATEGIES).default("merge"),
      check: z.array(z.string().max(4096)).max(200).default([]),
      check_timeout_mins: z.number().min(0.01).max(1440).default(30),
      push: z.boolean().default(false),
      max_failures: z.number().int().min(1).max(100).default(3),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    merge: typeof mergeContract;
  }
}

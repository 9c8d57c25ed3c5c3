/**
 * @module What worktrees add to the runtime's name spaces: their events, and their two keys, which SPEC §11
 * places in the `[pipeline]` table.
 */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";

export const worktreesContract = defineContract({
  events: {
    worktree_created: {
      topic: "items",
      schema: z.object({ item_id: z.string(), path: z.string(), branch: z.string() }),
    },
    worktree_removed: { topic: "items", schema: z.object({ item_id: z.string(), path: z.string() }) },
    worktree_kept: { topic: "items", schema: z.object({ item_id: z.string(), path: z.string(), reason: z.string() }) },
  },
  config: [
    defineConfig("pipeline", {
      worktrees: z.boolean().default(true),
      /** "" = the repository's default branch. */
      base_branch: z.string().default(""),
    }),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    worktrees: typeof worktreesContract;
  }
}

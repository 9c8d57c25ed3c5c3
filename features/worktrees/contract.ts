/**
 * @module What worktrees add to the runtime's name spaces: their events, and their two keys, which SPEC §11
 * places in the `[pipeline]` table.
 */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineEvents } from "../../core/events.ts";

export const worktreeEvents = defineEvents({
  worktree_created: { topic: "items", schema: z.object({ item_id: z.string(), path: z.string(), branch: z.string() }) },
  worktree_removed: { topic: "items", schema: z.object({ item_id: z.string(), path: z.string() }) },
  worktree_kept: { topic: "items", schema: z.object({ item_id: z.string(), path: z.string(), reason: z.string() }) },
});

export const worktreeConfig = defineConfig("pipeline", {
  worktrees: z.boolean().default(true),
  /** "" = the repository's default branch. */
  base_branch: z.string().default(""),
});

type _Events = typeof worktreeEvents;

declare module "../../core/events.ts" {
  interface EventMap extends _Events {}
}
declare module "../../core/config.ts" {
  interface ConfigParts {
    worktrees: typeof worktreeConfig;
  }
}

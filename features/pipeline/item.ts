/**
 * @module A work item as it is stored in the hub (`items/<first 2 chars>/<id>.json`), its validation, and
 * reading and writing it inside a hub transaction.
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { agentIdSchema, itemIdSchema } from "../../core/ids.ts";
import { parseJsonFile } from "../../core/json.ts";
import type { HubTx } from "../../hub/apply.ts";
import { STAGES } from "./stages.ts";

export const stageSchema = z.enum(STAGES);

export const claimSchema = z.object({
  agent_id: agentIdSchema,
  machine_id: z.string().min(1).max(128),
  claimed_at: z.string(),
  /** When the lease was last extended (absent until then): lease length = expires_at − (renewed_at ?? claimed_at). */
  renewed_at: z.string().optional(),
  expires_at: z.string(),
  fence: z.number().int().min(1),
});

export const usageSchema = z.object({
  input_tokens: z.number().int().min(0),
  output_tokens: z.number().int().min(0),
  cache_read_tokens: z.number().int().min(0),
  cost_usd: z.number().min(0),
  reports: z.number().int().min(0),
});

/** A note's text: at most 4 KiB of UTF-8 (SPEC §5), whoever wrote it, here or on another machine. */
export const NOTE_MAX_BYTES = 4096;
export const noteTextSchema = z
  .string()
  .min(1)
  .refine((s) => Buffer.byteLength(s, "utf8") <= NOTE_MAX_BYTES, {
    message: `must be at most ${NOTE_MAX_BYTES} bytes (UTF-8)`,
  });

/** How many notes an item keeps: the last ones. */
export const NOTES_KEPT = 50;

export const noteSchema = z.object({
  at: z.string().max(64),
  agent_id: agentIdSchema.nullable(),
  text: noteTextSchema,
});

/** How an item's work landed on the base branch (the merge feature moves it to done with this). */
export const mergedSchema = z.object({
  sha: z.string().regex(/^[0-9a-f]{40}$/, "must be a commit id"),
  base: z.string().min(1).max(255),
  strategy: z.enum(["merge", "squash", "rebase"]),
  at: z.string().max(64),
});

export const itemSchema = z.object({
  id: itemIdSchema,
  title: z.string().max(500),
  body: z.string().max(65_536),
  labels: z.array(z.string().max(64)).max(50),
  priority: z.number().int().min(0).max(3),
  stage: stageSchema,
  depends_on: z.array(itemIdSchema).max(100),
  claim: claimSchema.nullable(),
  fence: z.number().int().min(0),
  created_at: z.string(),
  created_by: z.string().max(128),
  updated_at: z.string(),
  /** What the item's work cost so far (`usage.report`); absent until the first report. */
  usage: usageSchema.optional(),
  /** What agents wrote about the work (`item.note`), oldest first; absent until the first note. */
  notes: z.array(noteSchema).max(NOTES_KEPT).optional(),
  /** Where and how its work landed; absent until merged. */
  merged: mergedSchema.optional(),
});

export type Item = z.output<typeof itemSchema>;
export type Claim = z.output<typeof claimSchema>;
export type Usage = z.output<typeof usageSchema>;
export type Note = z.output<typeof noteSchema>;

/** Where an item lives in the hub. */
export function itemPath(id: string): string {
  return `items/${id.slice(0, 2)}/${id}.json`;
}

/** The id an item path names, or null when the path is not a safe item path. */
export function idFromPath(path: string): string | null {
  const m = /^items\/([a-z2-7]{2})\/([a-z2-7]{5,32})\.json$/.exec(path);
  return m && m[2]!.startsWith(m[1]!) ? m[2]! : null;
}

/** Parses hub file text into an item; returns the reason when it is not a valid item at that path. */
export function parseItemFile(path: string, text: string): { item: Item } | { error: string } {
  const id = idFromPath(path);
  if (!id) return { error: "not a valid item path" };
  const parsed = parseJsonFile(text, itemSchema, 1_000_000);
  if ("error" in parsed) return parsed;
  if (parsed.value.id !== id) return { error: `id "${parsed.value.id}" does not match the file name` };
  return { item: parsed.value };
}

/** True when the claim is held (not expired) at `now`. */
export function claimHeld(item: Item, now: number): boolean {
  return item.claim !== null && Date.parse(item.claim.expires_at) > now;
}

/** Reads an item through the transaction or throws `not_found` (`conflict` when its file is invalid). */
export function mustItem(tx: HubTx, id: string, verb: string): Item {
  const raw = tx.read(itemPath(id));
  if (raw === null) throw new DroverError("not_found", `Cannot ${verb} item "${id}": no such item`);
  const parsed = itemSchema.safeParse(raw);
  if (!parsed.success) throw new DroverError("conflict", `Cannot ${verb} item "${id}": its hub file is invalid`);
  return parsed.data;
}

export function writeItem(tx: HubTx, item: Item): Item {
  tx.write(itemPath(item.id), item);
  return item;
}

/**
 * @module Notes on an item (`item.note`, SPEC §5): what an agent tried, what failed, kept in the item's hub file
 * so they sync with it and the next agent starts where the last one stopped. The last 50 are kept.
 */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { agentIdSchema, itemIdSchema } from "../../core/ids.ts";
import { defineHubOp } from "../../hub/op.ts";
import { mustItem, NOTES_KEPT, type Note, noteTextSchema, writeItem } from "./item.ts";

/**
 * The most the notes of one item take in its file (their JSON). 50 notes of 4 KiB of text fit; text that JSON
 * escapes (control characters take 6 bytes each) could make 50 of them 1.2 MB, past what another machine
 * reads of a hub file (`hub.max_file_bytes`), so the oldest go first until they fit.
 */
const NOTES_MAX_JSON_BYTES = 256 * 1024;

export const itemNote = defineHubOp({
  description: "Add a note to an item: what was tried, what failed (the last 50 are kept)",
  input: z.strictObject({
    id: itemIdSchema,
    text: noteTextSchema.describe("The note, at most 4 KiB"),
    agent: agentIdSchema.optional().describe("Who writes it"),
  }),
  http: { method: "POST", path: "/api/items/:id/notes", status: 201 },
  apply(args, tx): Note & { item_id: string } {
    const item = mustItem(tx, args.id, "add a note to");
    const note: Note = { at: iso(tx.now), agent_id: args.agent ?? null, text: args.text };
    writeItem(tx, { ...item, notes: keptNotes([...(item.notes ?? []), note]), updated_at: iso(tx.now) });
    return { item_id: item.id, ...note };
  },
});

/** The notes an item keeps: the last 50, fewer when their JSON would pass the budget. */
export function keptNotes(notes: Note[]): Note[] {
  const kept = notes.slice(-NOTES_KEPT);
  while (kept.length > 1 && Buffer.byteLength(JSON.stringify(kept)) > NOTES_MAX_JSON_BYTES) kept.shift();
  return kept;
}

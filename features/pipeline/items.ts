/** @module Making and reading items: `item.create` (a hub op), `item.get`, `items.list` (from the index). */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { defineOp } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import { agentIdSchema, itemIdSchema, labelSchema } from "../../core/ids.ts";
import type { HubTx } from "../../hub/apply.ts";
import { defineHubOp } from "../../hub/op.ts";
import { type Item, itemPath, mustItem, stageSchema, writeItem } from "./item.ts";

const createInput = z.strictObject({
  title: z.string().trim().min(1).max(500).describe("Short title"),
  body: z.string().max(65_536).default("").describe("Longer description"),
  labels: z.array(labelSchema).max(50).default([]).describe("Labels"),
  priority: z.number().int().min(0).max(3).default(2).describe("0 high … 3 low"),
  depends_on: z.array(itemIdSchema).max(100).default([]).describe("Ids of items this one waits for"),
  stage: stageSchema.default("backlog").describe("Initial stage"),
  agent: agentIdSchema.optional().describe("Who creates it"),
});

export const itemCreate = defineHubOp({
  description: "Create a work item (stage backlog unless given)",
  input: createInput,
  // the id the first run picks is recorded, so a replay makes the same item
  args: createInput.extend({ id: itemIdSchema.optional() }),
  http: { method: "POST", path: "/api/items", status: 201 },
  apply(args, tx, ctx): Item {
    for (const dep of args.depends_on) mustItem(tx, dep, "depend on");
    if (args.id && tx.read(itemPath(args.id)) !== null)
      throw new DroverError("conflict", `Cannot create item "${args.id}": the id is taken`);
    const id = (args.id ??= _newId(tx));
    const at = iso(tx.now);
    const item: Item = {
      id,
      title: args.title,
      body: args.body,
      labels: [...new Set(args.labels)],
      priority: args.priority,
      stage: args.stage,
      depends_on: [...new Set(args.depends_on)],
      claim: null,
      fence: 0,
      created_at: at,
      created_by: args.agent ?? ctx.machineId,
      updated_at: at,
    };
    return writeItem(tx, item);
  },
});

export const itemGet = defineOp({
  writes: false,
  description: "One item",
  input: z.strictObject({ id: itemIdSchema }),
  http: { method: "GET", path: "/api/items/:id" },
  run(ctx, { id }): Item {
    const row = ctx.db.query<{ json: string }, [string]>("SELECT json FROM items WHERE id = ?").get(id);
    if (!row) throw new DroverError("not_found", `Cannot find item "${id}"`);
    return JSON.parse(row.json) as Item;
  },
});

export const itemsList = defineOp({
  writes: false,
  description: "Items, by priority then age, optionally filtered",
  input: z.strictObject({
    stage: stageSchema.optional(),
    assignee: agentIdSchema.optional().describe("Only items claimed by this agent"),
    label: labelSchema.optional(),
  }),
  http: { method: "GET", path: "/api/items" },
  run(ctx, input): Item[] {
    const where: string[] = [];
    const params: string[] = [];
    if (input.stage) where.push("stage = ?") && params.push(input.stage);
    if (input.assignee) where.push("holder = ?") && params.push(input.assignee);
    if (input.label) where.push("EXISTS (SELECT 1 FROM json_each(labels) WHERE value = ?)") && params.push(input.label);
    const sql = `SELECT json FROM items ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY priority, created_at, id`;
    return ctx.db
      .query<{ json: string }, string[]>(sql)
      .all(...params)
      .map((r) => JSON.parse(r.json) as Item);
  },
  view: { columns: ["id", "stage", "priority", "claim.agent_id", "labels", "title"] },
});

// --- internal ---

function _newId(tx: HubTx): string {
  for (let length = 5; ; length++) {
    const id = randomBase32(length);
    if (tx.read(itemPath(id)) === null) return id;
  }
}

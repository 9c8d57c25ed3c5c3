/**
 * @module The pipeline's ops: input checks and answers. What each does to the hub is a replayable mutation
 * in `mutations.ts`, run through the hub's writer so ops batched into one commit see each other.
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { defineOp, type Context } from "../../core/feature.ts";
import { agentIdSchema, itemIdSchema, stageSchema, type Item } from "./item.ts";

const label = z.string().regex(/^[^\s,]{1,64}$/, "must be 1 to 64 characters without spaces or commas");
const ttl = z.number().int().min(1).max(7 * 86_400).describe("Claim lifetime in seconds");
const fence = z.number().int().min(0).describe("Fencing token of the claim the caller holds");

export const pipelineOps = {
  "item.create": defineOp({
    writes: true,
    description: "Create a work item (stage backlog unless given)",
    input: z.strictObject({
      title: z.string().trim().min(1).max(500).describe("Short title"),
      body: z.string().max(65_536).default("").describe("Longer description"),
      labels: z.array(label).max(50).default([]).describe("Labels"),
      priority: z.number().int().min(0).max(3).default(2).describe("0 high … 3 low"),
      depends_on: z.array(itemIdSchema).max(100).default([]).describe("Ids of items this one waits for"),
      stage: stageSchema.default("backlog").describe("Initial stage"),
      agent: agentIdSchema.optional().describe("Who creates it"),
    }),
    run(ctx, input) {
      return ctx.services.hub.run<Item>("item.create", { ...input });
    },
  }),

  "item.get": defineOp({

    writes: false,
    description: "One item",
    input: z.strictObject({ id: itemIdSchema }),
    run(ctx, { id }) {
      const row = ctx.db.query<{ json: string }, [string]>("SELECT json FROM items WHERE id = ?").get(id);
      if (!row) throw new DroverError("not_found", `Cannot find item "${id}"`);
      return JSON.parse(row.json) as Item;
    },
  }),

  "items.list": defineOp({

    writes: false,
    description: "Items, by priority then age, optionally filtered",
    input: z.strictObject({
      stage: stageSchema.optional(),
      assignee: agentIdSchema.optional().describe("Only items claimed by this agent"),
      label: label.optional(),
    }),
    run(ctx, input) {
      const where: string[] = [];
      const params: string[] = [];
      if (input.stage) where.push("stage = ?") && params.push(input.stage);
      if (input.assignee) where.push("holder = ?") && params.push(input.assignee);
      if (input.label) where.push("EXISTS (SELECT 1 FROM json_each(labels) WHERE value = ?)") && params.push(input.label);
      const sql = `SELECT json FROM items ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY priority, created_at, id`;
      return ctx.db.query<{ json: string }, string[]>(sql).all(...params).map((r) => JSON.parse(r.json) as Item);
    },
    view: { columns: ["id", "stage", "priority", "claim.agent_id", "labels", "title"] },
  }),

  "item.move": defineOp({

    writes: true,
    description: "Move an item to another stage",
    input: z.strictObject({
      id: itemIdSchema,
      to: stageSchema,
      agent: agentIdSchema.optional().describe("Who moves it"),
      reason: z.string().max(2000).optional(),
      fence: fence.optional(),
      force: z.boolean().default(false).describe("Move into coding even when dependencies are not done"),
    }),
    run(ctx, input) {
      return ctx.services.hub.run<Item>("item.move", { ...input });
    },
  }),

  "item.claim": defineOp({

    writes: true,
    description: "Claim an item for an agent (a lease with a fencing token)",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
    async run(ctx, input) {
      const args = { ...input, ttl_secs: input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs };
      const { result: item, confirmed } = await _runConfirmed<Item>(ctx, "item.claim", args);
      return { claim: item.claim!, fence: item.fence, confirmed };
    },
  }),

  "item.release": defineOp({

    writes: true,
    description: "Give up a claim",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, fence }),
    run(ctx, input) {
      return ctx.services.hub.run<Item>("item.release", { ...input });
    },
  }),

  "item.renew": defineOp({

    writes: true,
    description: "Extend the claim an agent holds",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
    run(ctx, input) {
      return ctx.services.hub.run<Item>("item.renew", { ...input, ttl_secs: input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs });
    },
  }),

  "agent.takeover": defineOp({

    writes: true,
    description: "Release every claim an agent holds (the watchdog does this for stale agents)",
    input: z.strictObject({ agent: agentIdSchema }),
    async run(ctx, input) {
      const held = ctx.db.query<{ id: string }, [string]>("SELECT id FROM items WHERE holder = ?").all(input.agent);
      if (!held.length) return { released: [] as string[] };
      return ctx.services.hub.run<{ released: string[] }>("agent.takeover", { ...input, items: held.map((h) => h.id) });
    },
  }),

  "item.next": defineOp({

    writes: true,
    description: "Claim the best ready item for an agent and move it into coding, atomically",
    input: z.strictObject({ agent: agentIdSchema, ttl_secs: ttl.optional() }),
    async run(ctx, input) {
      const args = { ...input, ttl_secs: input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs };
      const { result: item, confirmed } = await _runConfirmed<Item | null>(ctx, "item.next", args);
      return { item, fence: item?.fence ?? null, confirmed };
    },
    view: { empty: (r) => (r.item ? undefined : "Nothing is ready: no unclaimed item with its dependencies met") },
  }),
};

// --- internal ---

/**
 * Runs a grant and, with a remote, waits (bounded) for the push that makes it safe. The result is what the op
 * did where it counts — on the remote's tree, when it was replayed there: after another machine's release the
 * fence is higher than the local first run's. An op that changed nothing (nothing ready) has nothing to wait for.
 */
async function _runConfirmed<R>(ctx: Context, name: string, args: Record<string, unknown>): Promise<{ result: R; confirmed: boolean }> {
  const { result, opId } = await ctx.services.hub.runTracked<R>(name, args);
  if (result === null) return { result, confirmed: true };
  const confirmation = await ctx.services.sync.confirm(opId);
  if (!confirmation.confirmed) return { result, confirmed: false };
  return { result: "result" in confirmation ? (confirmation.result as R) : result, confirmed: true };
}

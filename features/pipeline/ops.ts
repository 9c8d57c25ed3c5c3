/**
 * @module The pipeline's ops. Each one is a hub mutation: it reads the items it needs through the writer's
 * transaction (so ops batched into one commit see each other), checks, and writes the new file.
 */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { defineOp, type Context } from "../../core/feature.ts";
import { randomBase32 } from "../../core/identity.ts";
import type { HubTx } from "../sync/hub.ts";
import { agentIdSchema, claimHeld, itemIdSchema, itemPath, itemSchema, stageSchema, type Item } from "./item.ts";
import { checkMove, MET_STAGES, TERMINAL_STAGES, UNCLAIMED_STAGES, type Stage } from "./stages.ts";

const label = z.string().regex(/^[^\s,]{1,64}$/, "must be 1 to 64 characters without spaces or commas");
const ttl = z.number().int().min(1).max(7 * 86_400).describe("Claim lifetime in seconds");
const fence = z.number().int().min(0).describe("Fencing token of the claim the caller holds");

export const pipelineOps = {
  "item.create": defineOp({
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
      const args: Record<string, unknown> = { ...input };
      return ctx.services.hub.submit({
        op: { op: "item.create", args },
        apply(tx) {
          for (const dep of input.depends_on) mustItem(tx, dep, "depend on");
          const id = _newId(tx);
          args.id = id;
          const at = iso(tx.now);
          const item: Item = {
            id,
            title: input.title,
            body: input.body,
            labels: [...new Set(input.labels)],
            priority: input.priority,
            stage: input.stage,
            depends_on: [...new Set(input.depends_on)],
            claim: null,
            fence: 0,
            created_at: at,
            created_by: input.agent ?? ctx.machineId,
            updated_at: at,
          };
          tx.write(itemPath(id), item);
          return item;
        },
      });
    },
  }),

  "item.get": defineOp({
    description: "One item",
    input: z.strictObject({ id: itemIdSchema }),
    run(ctx, { id }) {
      const row = ctx.db.query<{ json: string }, [string]>("SELECT json FROM items WHERE id = ?").get(id);
      if (!row) throw new DroverError("not_found", `Cannot find item "${id}"`);
      return JSON.parse(row.json) as Item;
    },
  }),

  "items.list": defineOp({
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
      return ctx.services.hub.submit({
        op: { op: "item.move", args: { ...input } },
        apply(tx) {
          const item = mustItem(tx, input.id, "move");
          _checkFence(item, input.fence, "move");
          if (input.agent && item.claim && claimHeld(item, tx.now) && item.claim.agent_id !== input.agent) {
            throw new DroverError("claimed", `Cannot move item "${item.id}": held by "${item.claim.agent_id}"`, { details: { holder: item.claim } });
          }
          checkMove(item.id, item.stage, input.to);
          if (input.to === "coding" && !input.force) _checkDeps(tx, item);
          return moveItem(tx, item, input.to);
        },
      });
    },
  }),

  "item.claim": defineOp({
    description: "Claim an item for an agent (a lease with a fencing token)",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
    async run(ctx, input) {
      const ttlSecs = input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs;
      const item = await ctx.services.hub.submit({
        op: { op: "item.claim", args: { ...input } },
        apply: (tx) => claimItem(ctx, tx, mustItem(tx, input.id, "claim"), { agent: input.agent, ttlSecs }),
      });
      // with no remote, this hub is the whole truth; with one, only a push confirms (until sync runs: false)
      return { claim: item.claim!, fence: item.fence, confirmed: ctx.config.hub.remote === "" };
    },
  }),

  "item.release": defineOp({
    description: "Give up a claim",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, fence }),
    run(ctx, input) {
      return ctx.services.hub.submit({
        op: { op: "item.release", args: { ...input } },
        apply(tx) {
          const item = mustItem(tx, input.id, "release");
          _checkFence(item, input.fence, "release");
          if (!item.claim || item.claim.agent_id !== input.agent || item.claim.fence !== input.fence) {
            throw new DroverError("not_holder", `Cannot release item "${item.id}": not held by "${input.agent}" with fence ${input.fence}`);
          }
          const next: Item = { ...item, claim: null, updated_at: iso(tx.now) };
          tx.write(itemPath(item.id), next);
          return next;
        },
      });
    },
  }),

  "item.renew": defineOp({
    description: "Extend the claim an agent holds",
    input: z.strictObject({ id: itemIdSchema, agent: agentIdSchema, ttl_secs: ttl.optional() }),
    run(ctx, input) {
      const ttlSecs = input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs;
      return ctx.services.hub.submit({
        op: { op: "item.renew", args: { ...input } },
        apply(tx) {
          const item = mustItem(tx, input.id, "renew");
          if (item.claim?.agent_id !== input.agent) {
            throw new DroverError("not_holder", `Cannot renew item "${item.id}": not held by "${input.agent}"`);
          }
          const claim = { ...item.claim, renewed_at: iso(tx.now), expires_at: iso(tx.now + ttlSecs * 1000) };
          const next: Item = { ...item, claim, updated_at: iso(tx.now) };
          tx.write(itemPath(item.id), next);
          return next;
        },
      });
    },
  }),

  "agent.takeover": defineOp({
    description: "Release every claim an agent holds (the watchdog does this for stale agents)",
    input: z.strictObject({ agent: agentIdSchema }),
    run(ctx, input) {
      const held = ctx.db.query<{ id: string }, [string]>("SELECT id FROM items WHERE holder = ?").all(input.agent);
      if (!held.length) return { released: [] as string[] };
      return ctx.services.hub.submit({
        op: { op: "agent.takeover", args: { ...input } },
        apply(tx) {
          const released: string[] = [];
          for (const { id } of held) {
            const item = mustItem(tx, id, "release");
            if (item.claim?.agent_id !== input.agent) continue;
            tx.write(itemPath(id), { ...item, claim: null, updated_at: iso(tx.now) } satisfies Item);
            released.push(id);
          }
          return { released };
        },
      });
    },
  }),

  "item.next": defineOp({
    description: "Claim the best ready item for an agent and move it into coding, atomically",
    input: z.strictObject({ agent: agentIdSchema, ttl_secs: ttl.optional() }),
    async run(ctx, input) {
      const ttlSecs = input.ttl_secs ?? ctx.config.pipeline.claim_ttl_secs;
      const args: Record<string, unknown> = { ...input };
      const item = await ctx.services.hub.submit({
        op: { op: "item.next", args },
        apply(tx) {
          const ready = nextReady(ctx, tx);
          if (!ready) return null;
          args.id = ready.id;
          const claimed = claimItem(ctx, tx, ready, { agent: input.agent, ttlSecs });
          return claimed.stage === "backlog" ? moveItem(tx, claimed, "coding") : claimed;
        },
      });
      return { item, fence: item?.fence ?? null };
    },
    view: { empty: (r) => (r.item ? undefined : "Nothing is ready: no unclaimed item with its dependencies met") },
  }),
};

/** Reads an item through the transaction or throws `not_found`. */
export function mustItem(tx: HubTx, id: string, verb: string): Item {
  const raw = tx.read(itemPath(id));
  if (raw === null) throw new DroverError("not_found", `Cannot ${verb} item "${id}": no such item`);
  const parsed = itemSchema.safeParse(raw);
  if (!parsed.success) throw new DroverError("conflict", `Cannot ${verb} item "${id}": its hub file is invalid`);
  return parsed.data;
}

/** Writes the item in its new stage; entering an unclaimed stage drops the claim. */
export function moveItem(tx: HubTx, item: Item, to: Stage): Item {
  const next: Item = { ...item, stage: to, updated_at: iso(tx.now) };
  if (UNCLAIMED_STAGES.has(to)) next.claim = null;
  tx.write(itemPath(item.id), next);
  return next;
}

/** Grants (or, for the holder, extends) a claim; refuses when another agent holds it. */
export function claimItem(ctx: Context, tx: HubTx, item: Item, options: { agent: string; ttlSecs: number }): Item {
  if (TERMINAL_STAGES.has(item.stage)) {
    throw new DroverError("conflict", `Cannot claim item "${item.id}": it is ${item.stage}`);
  }
  const expires_at = iso(tx.now + options.ttlSecs * 1000);
  let next: Item;
  if (item.claim && claimHeld(item, tx.now)) {
    if (item.claim.agent_id !== options.agent) {
      throw new DroverError("claimed", `Cannot claim item "${item.id}": held by "${item.claim.agent_id}"`, { details: { holder: item.claim } });
    }
    next = { ...item, claim: { ...item.claim, renewed_at: iso(tx.now), expires_at }, updated_at: iso(tx.now) };
  } else {
    const fenceNo = item.fence + 1;
    const claim = { agent_id: options.agent, machine_id: ctx.machineId, claimed_at: iso(tx.now), expires_at, fence: fenceNo };
    next = { ...item, claim, fence: fenceNo, updated_at: iso(tx.now) };
  }
  tx.write(itemPath(item.id), next);
  return next;
}

/** The best ready item: in backlog, coding, qa or merge, unclaimed or expired, dependencies met. */
export function nextReady(ctx: Context, tx: HubTx): Item | null {
  const rows = ctx.db
    .query<{ id: string }, [number]>(
      `SELECT id FROM items WHERE stage IN ('backlog', 'coding', 'qa', 'merge') AND (holder IS NULL OR expires_at <= ?)
       ORDER BY priority, created_at, id`,
    )
    .all(tx.now);
  for (const { id } of rows) {
    const item = mustItem(tx, id, "read");
    if (!["backlog", "coding", "qa", "merge"].includes(item.stage) || claimHeld(item, tx.now)) continue;
    if (_unmetDeps(tx, item).length === 0) return item;
  }
  return null;
}

// --- internal ---

function _newId(tx: HubTx): string {
  for (let length = 5; ; length++) {
    const id = randomBase32(length);
    if (tx.read(itemPath(id)) === null) return id;
  }
}

function _checkFence(item: Item, given: number | undefined, verb: string) {
  if (given !== undefined && given < item.fence) {
    throw new DroverError("stale_fence", `Cannot ${verb} item "${item.id}": fence ${given} is older than the item's ${item.fence}`, {
      details: { given, current: item.fence },
    });
  }
}

function _unmetDeps(tx: HubTx, item: Item): string[] {
  return item.depends_on.filter((dep) => {
    const raw = tx.read(itemPath(dep)) as Item | null;
    return !raw || !MET_STAGES.has(raw.stage);
  });
}

function _checkDeps(tx: HubTx, item: Item) {
  const unmet = _unmetDeps(tx, item);
  if (unmet.length) {
    throw new DroverError(
      "blocked_by_deps",
      `Cannot move item "${item.id}" into coding: waiting for ${unmet.map((d) => `"${d}"`).join(", ")}`,
      { details: { unmet } },
    );
  }
}

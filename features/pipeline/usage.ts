/**
 * @module What each item cost. `usage.report` appends a report to this machine's SQLite (totals per agent and
 * per item are queries over it) and, when it names an item, adds the numbers to the item's `usage` in the
 * hub through an op — so when sync replays ops on another machine's tree, reports from two machines add up
 * instead of one overwriting the other.
 */
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { defineOp } from "../../core/feature.ts";
import { agentIdSchema, itemIdSchema } from "../../core/ids.ts";
import { defineMutation } from "../../hub/op.ts";
import { type Item, mustItem, type Usage, writeItem } from "./item.ts";

export const usageMigrations = [
  `CREATE TABLE usage_reports (id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL, item_id TEXT, model TEXT,
     input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, at TEXT NOT NULL);
   CREATE INDEX usage_by_agent ON usage_reports (agent_id);
   CREATE INDEX usage_by_item ON usage_reports (item_id);`,
] as const;

const tokens = z.number().int().min(0).max(1e12);
const costs = {
  input_tokens: tokens,
  output_tokens: tokens,
  cache_read_tokens: tokens.default(0),
  cost_usd: z.number().min(0).max(1e9).default(0),
};

/** Adds a report to the item's totals in the hub: replayed, reports from two machines add up. */
export const addItemUsage = defineMutation("usage.report", {
  args: z.object({ id: itemIdSchema, ...costs }),
  apply(args, tx): Item {
    const current = mustItem(tx, args.id, "report usage on");
    return writeItem(tx, { ...current, usage: addUsage(current.usage, args), updated_at: iso(tx.now) });
  },
});

export const usageOps = {
  "usage.report": defineOp({
    writes: true,
    description: "Report what an agent's work cost (tokens, dollars), optionally against an item",
    input: z.strictObject({
      agent: agentIdSchema,
      item: itemIdSchema.optional(),
      model: z.string().max(100).optional(),
      ...costs,
    }),
    async run(ctx, input) {
      const at = iso(ctx.clock.now());
      const item = input.item ? await ctx.hub.run(addItemUsage, { ...input, id: input.item }) : null;
      ctx.db
        .query(
          "INSERT INTO usage_reports (agent_id, item_id, model, input_tokens, output_tokens, cache_read_tokens, cost_usd, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .run(
          input.agent,
          input.item ?? null,
          input.model ?? null,
          input.input_tokens,
          input.output_tokens,
          input.cache_read_tokens,
          input.cost_usd,
          at,
        );
      return { recorded: true, item_usage: item?.usage ?? null };
    },
  }),

  "usage.totals": defineOp({
    writes: false,
    description: "Usage reported on this machine, totalled per agent (or per item with --by item)",
    input: z.strictObject({ by: z.enum(["agent", "item"]).default("agent") }),
    run(ctx, input) {
      const key = input.by === "agent" ? "agent_id" : "item_id";
      return ctx.db
        .query(
          `SELECT ${key} AS ${input.by}, count(*) AS reports, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
             sum(cache_read_tokens) AS cache_read_tokens, round(sum(cost_usd), 6) AS cost_usd
           FROM usage_reports ${input.by === "item" ? "WHERE item_id IS NOT NULL" : ""} GROUP BY ${key} ORDER BY cost_usd DESC, ${key}`,
        )
        .all();
    },
  }),
};

/** An item's totals before its first report. */
export const NO_USAGE: Usage = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cost_usd: 0, reports: 0 };

/** Totals after one more report. */
export function addUsage(
  current: Usage | undefined,
  report: { input_tokens: number; output_tokens: number; cache_read_tokens: number; cost_usd: number },
): Usage {
  const u = current ?? NO_USAGE;
  return {
    input_tokens: u.input_tokens + report.input_tokens,
    output_tokens: u.output_tokens + report.output_tokens,
    cache_read_tokens: u.cache_read_tokens + report.cache_read_tokens,
    cost_usd: Math.round((u.cost_usd + report.cost_usd) * 1e6) / 1e6,
    reports: u.reports + 1,
  };
}

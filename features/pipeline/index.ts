/**
 * @module Feature `pipeline`: work items moving through stages, claims with fencing tokens, the pull model
 * (`item.next`), claim expiry and the archiving of done items.
 */
import { Hono } from "hono";
import { iso } from "../../core/clock.ts";
import type { BusEvent } from "../../core/events.ts";
import { defineFeature, type Context } from "../../core/feature.ts";
import { coerceFields, fieldsOf } from "../../core/fields.ts";
import { readJsonObject } from "../../server/body.ts";
import { httpOp } from "../../server/routes.ts";
import type { Item } from "./item.ts";
import { pipelineMutations } from "./mutations.ts";
import { pipelineOps } from "./ops.ts";
import { createAutoAssign, type AutoAssign } from "./assign.ts";
import { reconcileWorkingFiles } from "./reconcile.ts";
import { usageMigrations, usageOps } from "./usage.ts";
import { applyItemChanges, holderMachineMigration, viewMigrations } from "./view.ts";

declare module "../../core/feature.ts" {
  interface Services {
    autoAssign: AutoAssign;
  }
}

const requestAssign = (ctx: Context) => ctx.services.autoAssign.request();

export default defineFeature({
  name: "pipeline",
  migrations: [...viewMigrations, ...usageMigrations, holderMachineMigration],
  setup(ctx) {
    ctx.services.hub.repo.layout.add("items/*/*");
    for (const [name, apply] of Object.entries(pipelineMutations(ctx))) ctx.services.hub.define(name, apply);
    ctx.services.hub.onChange((set) => applyItemChanges(ctx, set));
    ctx.services.autoAssign = createAutoAssign(ctx);
  },
  on: {
    async heartbeat(ctx, event) {
      requestAssign(ctx);
      const { agent_id, active_item_id } = event as BusEvent<"heartbeat">;
      if (active_item_id) await _renewIfHeld(ctx, active_item_id, agent_id);
    },
    agent_status: requestAssign,
    agent_resumed: requestAssign,
    transition: requestAssign,
    claim_released: requestAssign,
    item_created: requestAssign,
  },
  ops: { ...pipelineOps, ...usageOps },
  handler(ctx) {
    const run = httpOp(ctx);
    const query = (name: string, raw: Record<string, string>) => coerceFields(fieldsOf(ctx.ops.get(name)!.input), raw);
    return new Hono()
      .get("/api/items", async (c) => c.json(await run("items.list", query("items.list", c.req.query()))))
      .post("/api/items", async (c) => c.json(await run("item.create", await readJsonObject(c.req.raw)), 201))
      .get("/api/items/:id", async (c) => c.json(await run("item.get", { id: c.req.param("id") })))
      .post("/api/items/:id/move", async (c) => c.json(await run("item.move", { ...(await readJsonObject(c.req.raw)), id: c.req.param("id") })))
      .post("/api/items/:id/claim", async (c) => c.json(await run("item.claim", { ...(await readJsonObject(c.req.raw)), id: c.req.param("id") })))
      .post("/api/items/:id/release", async (c) =>
        c.json(await run("item.release", { ...(await readJsonObject(c.req.raw)), id: c.req.param("id") })),
      )
      .post("/api/next", async (c) => c.json(await run("item.next", await readJsonObject(c.req.raw))))
      .get("/api/log", async (c) => c.json(await run("log", query("log", c.req.query()))));
  },
  async tick(ctx) {
    await Promise.all([_expireClaims(ctx), _archiveDone(ctx)]);
  },
  async reconcile(ctx) {
    const files = await reconcileWorkingFiles(ctx);
    const assigned = await ctx.services.autoAssign.run();
    return { ...files, changed: files.changed + assigned, assigned };
  },
});

// --- internal ---

const inFlight = new Set<string>();

/** Releases claims whose lease ran out (`claim_released`, reason `expired`). */
async function _expireClaims(ctx: Context) {
  const now = ctx.clock.now();
  // with a remote, each machine clears only the leases its own agents let lapse: a lapsed claim is already
  // free to take (claims check expiry), and five machines writing the same release would only contend
  const due = ctx.config.hub.remote
    ? ctx.db.query<{ id: string }, [string, number]>("SELECT id FROM items WHERE holder_machine = ? AND expires_at <= ? LIMIT 500").all(ctx.machineId, now)
    : ctx.db.query<{ id: string }, [number]>("SELECT id FROM items WHERE expires_at <= ? LIMIT 500").all(now);
  await Promise.all(
    due.map(({ id }) =>
      _once(`expire:${id}`, () =>
        ctx.services.hub.run("item.expire", { id }),
      ),
    ),
  );
}

/** Moves items that have been done for `pipeline.done_retention_secs` to archived. */
async function _archiveDone(ctx: Context) {
  const cutoff = iso(ctx.clock.now() - ctx.config.pipeline.done_retention_secs * 1000);
  const due = ctx.db.query<{ id: string }, [string]>("SELECT id FROM items WHERE stage = 'done' AND updated_at <= ? LIMIT 500").all(cutoff);
  await Promise.all(
    due.map(({ id }) =>
      _once(`archive:${id}`, () =>
        ctx.services.hub.run("item.archive", { id, reason: "retention", cutoff }),
      ),
    ),
  );
}

/** A heartbeat renews the claim it names once less than half of the lease is left (not a commit per beat). */
async function _renewIfHeld(ctx: Context, id: string, agent: string) {
  const row = ctx.db.query<{ json: string }, [string, string]>("SELECT json FROM items WHERE id = ? AND holder = ?").get(id, agent);
  const claim = row ? (JSON.parse(row.json) as Item).claim : null;
  if (!claim) return;
  const expires = Date.parse(claim.expires_at);
  const lease = expires - Date.parse(claim.renewed_at ?? claim.claimed_at);
  if (expires - ctx.clock.now() >= lease / 2) return;
  await ctx.ops.run("item.renew", { id, agent, ttl_secs: Math.max(1, Math.round(lease / 1000)) }, { via: "internal" }).catch((err) => {
    ctx.log.debug("Cannot renew on heartbeat", { item: id, error: err as Error });
  });
}

async function _once(key: string, fn: () => Promise<unknown>) {
  if (inFlight.has(key)) return;
  inFlight.add(key);
  try {
    await fn();
  } finally {
    inFlight.delete(key);
  }
}

/**
 * @module Feature `pipeline`: work items moving through stages, claims with fencing tokens, the pull model
 * (`item.next`), notes on items, claim expiry and the archiving of done items.
 */
import { iso } from "../../core/clock.ts";
import { type Context, defineFeature } from "../../core/feature.ts";
import { type AutoAssign, createAutoAssign } from "./assign.ts";
import { agentTakeover, expireClaim, itemClaim, itemNext, itemRelease, itemRenew } from "./claims.ts";
import { pipelineContract } from "./contract.ts";
import type { Item } from "./item.ts";
import { itemCreate, itemGet, itemsList } from "./items.ts";
import { archiveDone, itemMove } from "./moves.ts";
import { itemNote } from "./notes.ts";
import { reconcileWorkingFiles } from "./reconcile.ts";
import { addItemUsage, usageMigrations, usageOps } from "./usage.ts";
import { applyItemChanges, holderMachineMigration, viewMigrations } from "./view.ts";

declare module "../../core/feature.ts" {
  interface Services {
    autoAssign: AutoAssign;
  }
  interface OpMap {
    "item.create": typeof itemCreate;
    "item.get": typeof itemGet;
    "items.list": typeof itemsList;
    "item.move": typeof itemMove;
    "item.note": typeof itemNote;
    "item.claim": typeof itemClaim;
    "item.next": typeof itemNext;
    "item.renew": typeof itemRenew;
    "item.release": typeof itemRelease;
    "agent.takeover": typeof agentTakeover;
    "usage.report": (typeof usageOps)["usage.report"];
    "usage.totals": (typeof usageOps)["usage.totals"];
  }
}

const requestAssign = (ctx: Context) => ctx.services.autoAssign.request();

export default defineFeature({
  name: "pipeline",
  ...pipelineContract,
  migrations: [...viewMigrations, ...usageMigrations, holderMachineMigration],
  localOnly: ["usage reports made on this machine (item totals live in the hub)"],
  setup(ctx) {
    ctx.hub.repo.layout.add("items/*/*");
    for (const mutation of [expireClaim, archiveDone, addItemUsage]) ctx.hub.define(mutation);
    ctx.hub.onChange((set) => applyItemChanges(ctx, set));
    ctx.services.autoAssign = createAutoAssign(ctx);
    // a prompt action is an item for the next free agent
    ctx.services.actions.prompts = (prompt) => ({
      op: "item.create",
      args: { title: prompt.split("\n")[0]!.slice(0, 200), body: prompt, labels: ["prompt"] },
    });
  },
  on: {
    async heartbeat(ctx, { agent_id, active_item_id }) {
      requestAssign(ctx);
      if (active_item_id) await _renewIfHeld(ctx, active_item_id, agent_id);
    },
    agent_status: requestAssign,
    agent_resumed: requestAssign,
    transition: requestAssign,
    claim_released: requestAssign,
    item_created: requestAssign,
  },
  ops: {
    "item.create": itemCreate,
    "item.get": itemGet,
    "items.list": itemsList,
    "item.move": itemMove,
    "item.note": itemNote,
    "item.claim": itemClaim,
    "item.next": itemNext,
    "item.renew": itemRenew,
    "item.release": itemRelease,
    "agent.takeover": agentTakeover,
    ...usageOps,
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
  const due = ctx.hub.hasRemote()
    ? ctx.db
        .query<{ id: string }, [string, number]>(
          "SELECT id FROM items WHERE holder_machine = ? AND expires_at <= ? LIMIT 500",
        )
        .all(ctx.machineId, now)
    : ctx.db.query<{ id: string }, [number]>("SELECT id FROM items WHERE expires_at <= ? LIMIT 500").all(now);
  await Promise.all(due.map(({ id }) => _once(`expire:${id}`, () => ctx.hub.run(expireClaim, { id }))));
}

/** Moves items that have been done for `pipeline.done_retention_secs` to archived. */
async function _archiveDone(ctx: Context) {
  const cutoff = iso(ctx.clock.now() - ctx.config.pipeline.done_retention_secs * 1000);
  const due = ctx.db
    .query<{ id: string }, [string]>("SELECT id FROM items WHERE stage = 'done' AND updated_at <= ? LIMIT 500")
    .all(cutoff);
  await Promise.all(
    due.map(({ id }) => _once(`archive:${id}`, () => ctx.hub.run(archiveDone, { id, reason: "retention", cutoff }))),
  );
}

/** A heartbeat renews the claim it names once less than half of the lease is left (not a commit per beat). */
async function _renewIfHeld(ctx: Context, id: string, agent: string) {
  const row = ctx.db
    .query<{ json: string }, [string, string]>("SELECT json FROM items WHERE id = ? AND holder = ?")
    .get(id, agent);
  const claim = row ? (JSON.parse(row.json) as Item).claim : null;
  if (!claim) return;
  const expires = Date.parse(claim.expires_at);
  const lease = expires - Date.parse(claim.renewed_at ?? claim.claimed_at);
  if (expires - ctx.clock.now() >= lease / 2) return;
  await ctx.ops.call("item.renew", { id, agent, ttl_secs: Math.max(1, Math.round(lease / 1000)) }).catch((err) => {
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

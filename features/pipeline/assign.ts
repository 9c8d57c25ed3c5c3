/**
 * @module Auto-assign: an assignable agent of this machine that holds nothing gets the best ready item (through
 * `item.next`, so it is atomic), and `assigned` is published. Assignable (SPEC §5): active, unpaused, not
 * exiting or stuck, and its latest heartbeat says `accepts_work` — it listens for `assigned`. A hook's heartbeat
 * never says so: an item handed to a session that cannot hear of it stays stuck for its whole lease. Runs are
 * coalesced: a request while one runs makes one more run after it. Idempotent: an agent that holds something
 * is skipped.
 */
import { type Coalesced, coalesce } from "../../core/coalesce.ts";
import type { Context } from "../../core/feature.ts";

/** Requests within this long make one run (events come in bursts: one op publishes several). */
const COALESCE_MS = 50;

/** Its runs return how many agents got an item. */
export type AutoAssign = Coalesced;

export function createAutoAssign(ctx: Context): AutoAssign {
  async function once(): Promise<number> {
    if (!ctx.config.pipeline.auto_assign) return 0;
    const now = ctx.clock.now();
    const agents = await ctx.ops.call("agents.list", {});
    let assigned = 0;
    for (const agent of agents) {
      if (agent.machine_id !== ctx.machineId || agent.status !== "active" || agent.paused_until) continue;
      if (!agent.accepts_work || agent.state === "exiting" || agent.state === "stuck") continue;
      const holds = ctx.db.query("SELECT 1 FROM items WHERE holder = ? AND expires_at > ?").get(agent.agent_id, now);
      if (holds) continue;
      const { item } = await ctx.ops.call("item.next", { agent: agent.agent_id });
      if (!item) break; // nothing ready for anyone
      ctx.bus.publish("assigned", { item_id: item.id, agent_id: agent.agent_id });
      assigned++;
    }
    return assigned;
  }

  return coalesce(once, {
    delayMs: COALESCE_MS,
    onError: (err) => ctx.log.error("Auto-assign failed", { error: err }),
  });
}

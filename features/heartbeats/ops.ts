/** @module The heartbeats feature's ops: `heartbeat`, `agents.list`, `agent.pause`. */
import { join } from "node:path";
import { z } from "zod";
import { iso } from "../../core/clock.ts";
import { DroverError } from "../../core/errors.ts";
import { type Context, defineOp } from "../../core/feature.ts";
import { agentIdSchema, itemIdSchema } from "../../core/ids.ts";
import { canonicalJson } from "../../core/json.ts";
import { AGENT_STATES, heartbeatPath, makeHeartbeat, readHeartbeatDir, SKEW_MS, statusAt } from "./file.ts";

export interface AgentRow {
  agent_id: string;
  machine_id: string | null;
  status: "active" | "idle" | "stale" | "invalid";
  last_heartbeat: string | null;
  age_secs: number | null;
  active_item_id: string | null;
  state: string | null;
  paused_until: string | null;
  clock_skew: boolean;
  /** Its latest heartbeat said it listens for `assigned`: auto-assign may give it work. */
  accepts_work: boolean;
  reason?: string;
}

export const heartbeatOps = {
  heartbeat: defineOp({
    writes: true,
    idempotent: true,
    description: "Say an agent is alive (and what it works on); the daemon renews the claim on the item it names",
    http: { method: "POST", path: "/api/agents/:agent/heartbeat" },
    input: z.strictObject({
      agent: agentIdSchema,
      item: itemIdSchema.optional().describe("The item the agent works on"),
      state: z.enum(AGENT_STATES).optional().describe("Default: working with an item, idle without"),
      accepts_work: z
        .boolean()
        .default(false)
        .describe("This agent listens for its assigned events: auto-assign may give it an item"),
    }),
    run(ctx, input) {
      const heartbeat = writeHeartbeat(ctx, input.agent, {
        item: input.item ?? null,
        state: input.state ?? (input.item ? "working" : "idle"),
        acceptsWork: input.accepts_work,
      });
      if (ctx.mode === "daemon") ctx.services.heartbeats.monitor.scanFiles([`${input.agent}.json`]);
      return heartbeat;
    },
  }),

  "agents.list": defineOp({
    writes: false,
    description: "Agents with their status (active, idle, stale) and age; --all adds unreadable heartbeat files",
    http: { method: "GET", path: "/api/agents" },
    input: z.strictObject({ all: z.boolean().default(false).describe("Also list invalid heartbeat files") }),
    run(ctx, input) {
      return listAgents(ctx, input.all);
    },
    view: {
      columns: ["agent_id", "status", "age_secs", "state", "active_item_id", "machine_id", "paused_until", "reason"],
    },
  }),

  "agent.pause": defineOp({
    writes: true,
    description: "Keep auto-assign away from an agent until a time (e.g. after a provider rate limit)",
    input: z.strictObject({
      agent: agentIdSchema,
      until: z.string().max(40).describe('ISO time, or a duration from now: "90s", "15m", "2h"'),
    }),
    async run(ctx, input) {
      const until = iso(_untilMs(input.until, ctx.clock.now()));
      const earlier = ctx.db
        .query<{ timer_id: string | null }, [string]>("SELECT timer_id FROM agent_pauses WHERE agent_id = ?")
        .get(input.agent);
      if (earlier?.timer_id) await ctx.ops.call("timer.cancel", { id: earlier.timer_id }).catch(() => undefined);
      const timer = await ctx.ops.call("timer.add", {
        at: until,
        op: "agent.resume",
        args: { agent: input.agent },
        label: `resume ${input.agent}`,
      });
      ctx.db
        .query("INSERT OR REPLACE INTO agent_pauses (agent_id, until, timer_id) VALUES (?, ?, ?)")
        .run(input.agent, until, timer.id);
      ctx.bus.publish("agent_paused", { agent_id: input.agent, until });
      return { agent_id: input.agent, paused_until: until, timer_id: timer.id };
    },
  }),

  "agent.resume": defineOp({
    writes: true,
    idempotent: true,
    description: "End an agent's pause now (its pause timer does this when the time comes)",
    input: z.strictObject({ agent: agentIdSchema }),
    run(ctx, input) {
      const row = ctx.db
        .query<{ timer_id: string | null }, [string]>("DELETE FROM agent_pauses WHERE agent_id = ? RETURNING timer_id")
        .get(input.agent);
      if (!row) return { agent_id: input.agent, resumed: false };
      ctx.bus.publish("agent_resumed", { agent_id: input.agent });
      return { agent_id: input.agent, resumed: true };
    },
  }),
};

/**
 * Every agent with a heartbeat file: in the daemon from the monitor's snapshot (kept current by the watchers),
 * in a CLI process read from the folder now.
 */
export function listAgents(ctx: Context, all: boolean): AgentRow[] {
  const now = ctx.clock.now();
  const thresholds = {
    idleAfterMs: ctx.config.heartbeats.idle_after_secs * 1000,
    staleAfterMs: ctx.config.heartbeats.stale_after_secs * 1000,
  };
  const pauses = new Map(
    ctx.db
      .query<{ agent_id: string; until: string }, [string]>("SELECT agent_id, until FROM agent_pauses WHERE until > ?")
      .all(iso(now))
      .map((r) => [r.agent_id, r.until]),
  );
  const rows: AgentRow[] = [];
  const files =
    ctx.mode === "daemon"
      ? [
          ...[...ctx.services.heartbeats.monitor.agents().values()].map((s) => ({
            file: `${s.heartbeat.agent_id}.json`,
            result: { heartbeat: s.heartbeat },
          })),
          ...ctx.services.heartbeats.monitor.invalid().map((i) => ({ file: i.file, result: { error: i.reason } })),
        ]
      : readHeartbeatDir(join(ctx.paths.hub, "heartbeats"));
  for (const { file, result: parsed } of files) {
    if ("error" in parsed) {
      if (all) rows.push({ ..._blank(file.replace(/\.json$/, "")), status: "invalid", reason: parsed.error });
      continue;
    }
    const hb = parsed.heartbeat;
    const last = Date.parse(hb.last_heartbeat);
    rows.push({
      agent_id: hb.agent_id,
      machine_id: hb.machine_id,
      status: statusAt(last, now, thresholds),
      last_heartbeat: hb.last_heartbeat,
      age_secs: Math.round((now - last) / 1000),
      active_item_id: hb.active_item_id,
      state: hb.state,
      paused_until: pauses.get(hb.agent_id) ?? null,
      clock_skew: last - now > SKEW_MS,
      accepts_work: hb.accepts_work,
    });
  }
  return rows.sort((a, b) => a.agent_id.localeCompare(b.agent_id));
}

/** Writes this agent's heartbeat file now: no commit, no lock (one writer per agent); the next round commits it. */
export function writeHeartbeat(
  ctx: Context,
  agent: string,
  fields: { item: string | null; state: string; acceptsWork?: boolean },
) {
  const heartbeat = makeHeartbeat(agent, { machineId: ctx.machineId, now: ctx.clock.now(), ...fields });
  ctx.hub.writeWorkingFile(heartbeatPath(agent), canonicalJson(heartbeat));
  return heartbeat;
}

// --- internal ---

function _untilMs(text: string, now: number): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (m) return now + Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  const at = Date.parse(text);
  if (Number.isNaN(at))
    throw new DroverError(
      "invalid_input",
      `Invalid "until": "${text}" is neither an ISO time nor a duration like "15m"`,
    );
  return at;
}

function _blank(agent: string): AgentRow {
  return {
    agent_id: agent,
    machine_id: null,
    status: "invalid",
    last_heartbeat: null,
    age_secs: null,
    active_item_id: null,
    state: null,
    paused_until: null,
    clock_skew: false,
    accepts_work: false,
  };
}

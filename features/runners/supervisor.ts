/**
 * @module The supervisor: fills this machine's free runner slots with ready items and watches each run until it
 * ends. A slot is the agent `<runner>-<machine_id>-<n>`; filling one is `item.next` for that agent (atomic, so
 * two machines never start on the same item), the item's worktree, then the process. While the process lives the
 * supervisor heartbeats for the slot (renewing the claim); it stops a run past `timeout_mins`, or quiet — no
 * output and no heartbeat of its own hooks — for `quiet_mins`. Time comes from the injected clock (the 1 s tick).
 */
import { coalesce } from "../../core/coalesce.ts";
import type { Context } from "../../core/feature.ts";
import type { RunEnding } from "./contract.ts";
import { endRunOf, type LiveRun } from "./endings.ts";
import { launchRun, pruneLogs, type RunSpec, recoverOrphans, STOP_GRACE_MS } from "./launch.ts";

/** The supervisor's heartbeat for a running slot (renews the claim; well inside `idle_after_secs`). */
const BEAT_MS = 30_000;

/** A heartbeat for a slot written this soon after the supervisor began its own is taken to be that one. */
const OWN_BEAT_MS = 1_000;

export interface Supervisor {
  /** Fill free slots soon; many requests make one fill. */
  request(): void;
  /** Fill free slots now; resolves with how many runs started. */
  fill(): Promise<number>;
  /** Per tick: stop runs past their time or quiet, escalate stops, heartbeat for running slots. */
  tick(): void;
  /** A heartbeat for a slot that is not the supervisor's own: the run shows life. */
  sawHeartbeat(agent: string, lastHeartbeat: string): void;
  /** Asks a run to stop (SIGTERM, SIGKILL after the grace); false when it is not running here. */
  stop(run: string, reason: RunEnding): boolean;
  /**
   * Daemon start: runs a dead daemon left are stopped and their items released. Fills start nothing until that is
   * done, then one is requested: start-up does not wait for their grace.
   */
  recover(): Promise<number>;
  /** Daemon stop: every run stopped, its ending applied, nothing of the supervisor's left in progress. */
  stopAll(): Promise<void>;
}

export function createSupervisor(ctx: Context): Supervisor {
  const lives = new Map<string, LiveRun>(); // by agent (slot)
  const pending = new Set<Promise<unknown>>();
  let closing = false;
  let recovering = false;

  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    const done = () => void pending.delete(p);
    p.then(done, done);
    return p;
  };

  const filler = coalesce(() => fillOnce(), {
    delayMs: 20,
    onError: (err) => ctx.log.error("Runners could not fill their slots", { error: err }),
    halted: () => closing,
    track,
  });

  // no check of the mode: only the daemon fills (index.ts), and only there do events reach features
  async function fillOnce(): Promise<number> {
    const runners = Object.entries(ctx.config.runners);
    // a slot an orphan held is free once its item was released
    if (recovering || closing || !ctx.config.pipeline.auto_assign || runners.length === 0) return 0;
    const paused = new Set(
      (await ctx.ops.call("agents.list", {})).filter((a) => a.paused_until).map((a) => a.agent_id),
    );
    let started = 0;
    for (const [name, runner] of runners) {
      const slots = Array.from({ length: runner.max }, (_, n) => slotAgent(name, ctx.machineId, n + 1));
      if (slots.some((s) => paused.has(s))) continue; // a rate limit is the account's: the whole runner waits
      for (const agent of slots) {
        if (closing) return started;
        if (lives.has(agent)) continue;
        if ((await ctx.ops.call("items.list", { assignee: agent })).length) continue;
        const next = await ctx.ops.call("item.next", { agent, stages: runner.stages, labels: runner.labels });
        if (!next.item) break;
        ctx.bus.publish("assigned", { item_id: next.item.id, agent_id: agent });
        await start({ runner: name, spec: runner, agent, item: next.item, fence: next.fence ?? next.item.fence });
        started++;
      }
    }
    return started;
  }

  async function start(spec: RunSpec): Promise<void> {
    const { live, exited } = await launchRun(ctx, spec);
    lives.set(spec.agent, live);
    if (closing) api.stop(live.row.run, "stopped"); // the daemon began stopping while this run started
    await beat(live);
    track(
      exited.then(async (result) => {
        await endRunOf(ctx, live, result);
        lives.delete(spec.agent);
        pruneLogs(ctx);
        api.request();
      }),
    );
  }

  async function beat(live: LiveRun): Promise<void> {
    live.beat = ctx.clock.now();
    const hb = await ctx.ops
      .call("heartbeat", { agent: live.row.agent_id, item: live.row.item_id, state: "working" })
      .catch((err: Error) => void ctx.log.warn(`Heartbeat for run "${live.row.run}": ${err.message}`));
    if (hb) live.ownBeat = hb.last_heartbeat;
  }

  const api: Supervisor = {
    request: () => filler.request(),
    fill: () => filler.run(),
    tick() {
      const now = ctx.clock.now();
      for (const live of lives.values()) {
        if (live.stopping) {
          if (!live.stopping.killed && now - live.stopping.at >= STOP_GRACE_MS) {
            live.stopping.killed = true;
            live.proc?.signal("SIGKILL");
          }
          continue;
        }
        const { timeout_mins, quiet_mins } = live.runner;
        if (now - live.started >= timeout_mins * 60_000) api.stop(live.row.run, "timeout");
        else if (now - live.activity >= quiet_mins * 60_000) api.stop(live.row.run, "stuck");
        else if (now - live.beat >= BEAT_MS) void track(beat(live));
      }
    },
    sawHeartbeat(agent, lastHeartbeat) {
      const live = lives.get(agent);
      if (!live || lastHeartbeat === live.ownBeat) return;
      // the supervisor's own beat is announced before its call returns: one written just after it began is it
      const since = Date.parse(lastHeartbeat) - live.beat;
      if (since >= 0 && since < OWN_BEAT_MS) return;
      live.activity = ctx.clock.now();
    },
    stop(run, reason) {
      const live = [...lives.values()].find((l) => l.row.run === run);
      if (!live || live.stopping) return Boolean(live);
      live.stopping = { reason, at: ctx.clock.now(), killed: false };
      live.proc?.signal("SIGTERM");
      return true;
    },
    async recover() {
      recovering = true;
      try {
        return await track(recoverOrphans(ctx));
      } catch (err) {
        ctx.log.error("Runs a dead daemon left could not be recovered", { error: err as Error });
        return 0;
      } finally {
        recovering = false;
        api.request();
      }
    },
    async stopAll() {
      closing = true;
      for (const live of lives.values()) api.stop(live.row.run, "stopped");
      // the ticker may be stopped already: the grace is measured here
      const deadline = Date.now() + STOP_GRACE_MS;
      while (lives.size && Date.now() < deadline) await Bun.sleep(50);
      for (const live of lives.values()) live.proc?.signal("SIGKILL");
      while (pending.size) await Promise.allSettled([...pending]);
    },
  };
  return api;
}

/** The agent id of a runner's slot `n` on a machine: stable across restarts. */
export function slotAgent(runner: string, machineId: string, n: number): string {
  const id = `${runner}-${machineId}-${n}`;
  if (id.length <= 64) return id;
  // too long for an agent id: the machine shortened to a hash, so slots and machines stay apart
  const machine = new Bun.CryptoHasher("sha256").update(machineId).digest("hex").slice(0, 12);
  return `${runner}-${machine}-${n}`;
}

// --- internal ---

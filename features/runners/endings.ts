/**
 * @module How a run's end decides its item's fate (SPEC §13, endings): the agent moved the item itself → nothing
 * more; exit 0 → `on_success`; a rate limit → the runner waits until the provider's reset (else backs off) and the
 * item is released untouched; a failure, crash, timeout or stuck run → released with a note giving the reason and
 * the log's tail, and after `max_attempts` such runs in a row the item is `blocked`. Usage the run's output reported
 * is added to the item either way.
 */
import { iso } from "../../core/clock.ts";
import type { Context } from "../../core/feature.ts";
import type { RunEnding, Runner } from "./contract.ts";
import type { OutputReader } from "./output.ts";
import { type Exit, logTail, type RunProcess } from "./process.ts";
import { endRun, FAILURES, failuresInARow, type RunRow, rateLimitsInARow } from "./store.ts";

/** What the endings table reads of a run: one the supervisor watched, or one a dead daemon left behind. */
export interface EndingRun {
  row: Pick<RunRow, "run" | "runner" | "agent_id" | "item_id" | "stage" | "fence" | "cwd" | "log">;
  /** Null for a run found after a restart whose runner is no longer configured. */
  runner: Runner | null;
  /** What its output said; none for a run found after a restart. */
  reader?: OutputReader;
  /** Why the command could not be started at all. */
  startError?: string;
  /** Set when drover stopped it: that is its reason, however it exited. */
  stopping: { reason: RunEnding } | null;
}

/** A run the supervisor started and watches. */
export interface LiveRun extends EndingRun {
  runner: Runner;
  reader: OutputReader;
  proc?: RunProcess;
  /** Clock times (ms): started, last output or own-hook heartbeat, last supervisor heartbeat. */
  started: number;
  activity: number;
  beat: number;
  /** The `last_heartbeat` of the supervisor's own latest heartbeat (not the run's own activity). */
  ownBeat: string | null;
  stopping: { reason: RunEnding; at: number; killed: boolean } | null;
}

/** Backoff after a rate limit with no reset time given: this, doubled per limit in a row, at most an hour. */
const BACKOFF_MS = 120_000;
/** How much of the log's end goes into a failure's note. */
const TAIL_BYTES = 2_500;

/** Applies the endings table to a run whose process has ended; publishes `run_ended`. Never throws. */
export async function endRunOf(ctx: Context, run: EndingRun, result: Exit): Promise<void> {
  const { row } = run;
  const usage = run.reader?.usage() ?? null;
  const item = await ctx.ops.call("item.get", { id: row.item_id }).catch(() => null);
  const held = item?.claim?.agent_id === row.agent_id && item.fence === row.fence;
  let reason: RunEnding =
    run.stopping?.reason ??
    (run.startError
      ? "not_started"
      : run.reader?.rateLimit()
        ? "rate_limited"
        : result.signal
          ? "crashed"
          : result.exitCode === 0
            ? "success"
            : "failed");
  if ((!held || item?.stage !== row.stage) && ["success", "failed", "crashed"].includes(reason)) reason = "moved";
  const step = async (what: string, fn: () => Promise<unknown>) =>
    fn().catch((err: Error) => ctx.log.warn(`Run "${row.run}" (${what}): ${err.message}`));

  if (usage && (usage.input_tokens || usage.output_tokens || usage.cost_usd)) {
    await step("usage", () =>
      ctx.ops.call("usage.report", {
        agent: row.agent_id,
        item: row.item_id,
        model: usage.model ?? undefined,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_tokens,
        cost_usd: usage.cost_usd,
      }),
    );
  }
  const claim = { id: row.item_id, agent: row.agent_id, fence: row.fence };
  if (held && item) {
    if (reason === "success" && run.runner) {
      const to = run.runner.on_success;
      await step(`move to ${to}`, () =>
        ctx.ops.call("item.move", { ...claim, to, reason: `run ${row.run} succeeded` }),
      );
    } else if (reason === "rate_limited") {
      const limit = run.reader?.rateLimit();
      const k = rateLimitsInARow(ctx.db, row.agent_id) + 1; // this run is not counted as ended yet
      const until = limit?.resetsAt ?? ctx.clock.now() + Math.min(3_600_000, BACKOFF_MS * 2 ** Math.max(0, k - 1));
      await step("pause", () => ctx.ops.call("agent.pause", { agent: row.agent_id, until: iso(until) }));
    } else if (reason !== "moved") {
      await step("note", () =>
        ctx.ops.call("item.note", { id: row.item_id, agent: row.agent_id, text: _note(run, reason, result) }),
      );
      const attempts = run.runner?.max_attempts ?? Number.POSITIVE_INFINITY;
      if (FAILURES.has(reason) && failuresInARow(ctx.db, row.item_id) + 1 >= attempts) {
        await step("block", () =>
          ctx.ops.call("item.move", { ...claim, to: "blocked", reason: `${attempts} runs in a row failed` }),
        );
      }
    }
  }
  // whatever happened, the slot lets go of the item (a move to qa or blocked keeps a claim)
  const after = await ctx.ops.call("item.get", { id: row.item_id }).catch(() => null);
  if (after?.claim?.agent_id === row.agent_id && after.fence === row.fence) {
    // a trigger may move the item on (merge → done drops the claim) between that read and this release
    await ctx.ops.call("item.release", claim).catch((err: Error & { code?: string }) => {
      if (!_GONE.has(err.code ?? "")) ctx.log.warn(`Run "${row.run}" (release): ${err.message}`);
    });
  }
  // ended only now: whoever sees the run ended sees its item where the ending put it
  endRun(ctx.db, row.run, { at: iso(ctx.clock.now()), exitCode: result.exitCode, reason, usage });
  ctx.bus.publish("run_ended", {
    run: row.run,
    runner: row.runner,
    agent_id: row.agent_id,
    item_id: row.item_id,
    exit_code: result.exitCode,
    reason,
    usage,
  });
}

// --- internal ---

/** Refusals of a release that mean the claim is gone already: nothing left to let go of. */
const _GONE = new Set(["not_holder", "stale_fence", "claimed"]);

const _SAID: Record<RunEnding, string> = {
  moved: "moved its item",
  success: "succeeded",
  failed: "failed",
  crashed: "crashed",
  timeout: "ran past its timeout and was stopped",
  stuck: "was quiet too long (no output, no heartbeat) and was stopped",
  rate_limited: "hit a rate limit",
  stopped: "was stopped",
  orphaned: "was left running by a daemon that died, and was stopped",
  not_started: "could not be started",
};

function _note(run: EndingRun, reason: RunEnding, result: Exit): string {
  const how = result.signal
    ? ` (signal ${result.signal})`
    : result.exitCode !== null
      ? ` (exit ${result.exitCode})`
      : "";
  const head = `Run "${run.row.run}" of runner "${run.row.runner}" ${_SAID[reason]}${how}.`;
  const tail = run.startError ?? logTail(run.row.log, TAIL_BYTES).trim();
  return (tail ? `${head} The end of its output:\n${tail}` : head).slice(0, 4000);
}

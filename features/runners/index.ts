/**
 * @module Feature `runners` (SPEC §13): drover starts agents on ready work. Each `[runners.<name>]` table declares
 * a kind of agent this machine can run and how many at once; the daemon's supervisor fills free slots with ready
 * items and watches each run to its end. Runner commands come from the shared config: they run only once this
 * machine trusts them (§12). Runs are this machine's own (`state.db`); their events reach everyone.
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";
import { type Context, defineFeature, defineOp } from "../../core/feature.ts";
import { itemIdSchema } from "../../core/ids.ts";
import { runnersContract } from "./contract.ts";
import { logTail } from "./process.ts";
import { getRun, listRuns, type RunRow, runMigrations } from "./store.ts";
import { createSupervisor, type Supervisor } from "./supervisor.ts";

declare module "../../core/feature.ts" {
  interface Services {
    runners: Supervisor;
  }
  interface OpMap {
    "runs.list": typeof runsList;
    "run.get": typeof runGet;
    "run.stop": typeof runStop;
  }
}

const runIdSchema = z
  .string()
  .regex(/^run-[a-z2-7]{8}$/, 'must be a run id ("run-" and 8 characters of a-z and 2-7)')
  .describe("Run id");

/** How much of a run's log `run.get` answers with. */
const TAIL_BYTES = 16 * 1024;

const runsList = defineOp({
  writes: false,
  description: "Runs this machine started, newest first: runner, agent, item, state and how each ended",
  http: { method: "GET", path: "/api/runs" },
  input: z.strictObject({
    state: z.enum(["running", "ended"]).optional(),
    item: itemIdSchema.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(50),
  }),
  run(ctx, input) {
    return listRuns(ctx.db, input);
  },
  view: { columns: ["run", "runner", "agent_id", "item_id", "state", "reason", "exit_code", "started_at"] },
});

const runGet = defineOp({
  writes: false,
  description: "One run, with the end of its log",
  http: { method: "GET", path: "/api/runs/:run" },
  input: z.strictObject({ run: runIdSchema }),
  run(ctx, input) {
    const row = _mustRun(ctx, input.run);
    return { ...row, tail: row.log ? logTail(row.log, TAIL_BYTES) : "" };
  },
});

const runStop = defineOp({
  writes: true,
  destructive: true,
  inDaemon: true,
  description: "Stop a run: SIGTERM to its process group, SIGKILL 10 s later; its item is released with a note",
  http: { method: "POST", path: "/api/runs/:run/stop" },
  input: z.strictObject({ run: runIdSchema }),
  run(ctx, input) {
    const row = _mustRun(ctx, input.run);
    if (row.state !== "running" || !ctx.services.runners.stop(input.run, "stopped"))
      throw new DroverError("conflict", `Cannot stop run "${input.run}": it is not running`);
    return { run: input.run, stopping: true };
  },
});

export default defineFeature({
  name: "runners",
  ...runnersContract,
  localOnly: ["the record of runs this machine started (their logs stay in .drover/runs/)"],
  // a runner is a command this machine will execute, written in a file anyone who can push edits
  trust: { runners: (v) => typeof v === "object" && v !== null && Object.keys(v).length > 0 },
  migrations: runMigrations,
  ops: { "runs.list": runsList, "run.get": runGet, "run.stop": runStop },
  setup(ctx) {
    ctx.services.runners = createSupervisor(ctx);
  },
  on: {
    item_created: (ctx) => ctx.services.runners.request(),
    transition: (ctx) => ctx.services.runners.request(),
    claim_released: (ctx) => ctx.services.runners.request(),
    agent_resumed: (ctx) => ctx.services.runners.request(),
    // `drover trust` approved the runners, or a change to them: fill by what is in force now
    config_retrusted: (ctx) => ctx.services.runners.request(),
    heartbeat: (ctx, e) => ctx.services.runners.sawHeartbeat(e.agent_id, e.last_heartbeat),
  },
  tick(ctx) {
    if (ctx.mode === "daemon") ctx.services.runners.tick();
  },
  async reconcile(ctx) {
    if (ctx.mode !== "daemon") return { changed: 0 };
    return { changed: await ctx.services.runners.fill() };
  },
  start(ctx) {
    // not awaited: stopping orphans may take their grace; fills start nothing until it is over
    void ctx.services.runners.recover();
    ctx.services.runners.request();
  },
  async stop(ctx) {
    await ctx.services.runners.stopAll();
  },
});

// --- internal ---

function _mustRun(ctx: Context, run: string): RunRow {
  const row = getRun(ctx.db, run);
  if (!row) throw new DroverError("not_found", `Cannot find run "${run}" on this machine`);
  return row;
}

/**
 * @module What runners add to the runtime's name spaces: `run_started`, `run_ended`, and the `[runners.<name>]`
 * tables (SPEC §13), one per kind of agent this machine can start.
 */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";
import { labelSchema } from "../../core/ids.ts";

export const PRESETS = ["claude", "codex", "command"] as const;
export type Preset = (typeof PRESETS)[number];

/** Why a run ended (`run_ended.reason`). */
export const RUN_ENDINGS = [
  "moved", // the agent moved its item itself
  "success", // exit 0: the item went to `on_success`
  "failed", // non-zero exit
  "crashed", // killed by a signal it did not get from drover
  "timeout",
  "stuck", // no output and no heartbeat for `quiet_mins`
  "rate_limited",
  "stopped", // run.stop, or the daemon stopping
  "orphaned", // found running after a daemon died without stopping it
  "not_started", // the command could not be started
] as const;
export type RunEnding = (typeof RUN_ENDINGS)[number];

const usage = z.object({
  input_tokens: z.number(),
  output_tokens: z.number(),
  cache_read_tokens: z.number(),
  cost_usd: z.number(),
  model: z.string().nullable(),
});
export type RunUsage = z.output<typeof usage>;

const minutes = z.number().min(0.01).max(10_080);

/** One `[runners.<name>]` table. Stages are the pipeline's (SPEC §5); the pipeline checks moves again. */
export const runnerSchema = z.strictObject({
  preset: z.enum(PRESETS).default("command"),
  command: z.array(z.string().max(4096)).max(200).default([]),
  max: z.number().int().min(1).max(64).default(1),
  stages: z
    .array(z.enum(["coding", "qa", "merge"]))
    .min(1)
    .default(["coding"]),
  labels: z.array(labelSchema).max(20).default([]),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name"), z.string())
    .default({}),
  on_success: z.enum(["coding", "qa", "merge", "done"]).default("qa"),
  timeout_mins: minutes.default(60),
  quiet_mins: minutes.default(10),
  max_attempts: z.number().int().min(1).max(100).default(3),
  prompt: z.string().max(65_536).default(""),
});
export type Runner = z.output<typeof runnerSchema>;

/** What names a run in its events. */
const runIds = { run: z.string(), runner: z.string(), agent_id: z.string(), item_id: z.string() };

export const runnersContract = defineContract({
  events: {
    run_started: {
      topic: "runs",
      schema: z.object({ ...runIds, pid: z.number().nullable(), cwd: z.string() }),
    },
    run_ended: {
      topic: "runs",
      schema: z.object({
        ...runIds,
        exit_code: z.number().nullable(),
        reason: z.enum(RUN_ENDINGS),
        usage: usage.nullable(),
      }),
    },
  },
  config: [
    defineConfig(
      "runners",
      {},
      {
        entries: {
          name: /^[a-z0-9-]{1,32}$/,
          schema: runnerSchema.superRefine((r, check) => {
            if (r.preset === "command" && r.command.length === 0)
              check.addIssue({ code: "custom", path: ["command"], message: 'the "command" preset needs a command' });
            // a success that leaves the item where the runner takes items from would run it again, forever
            if (r.stages.includes(r.on_success as never))
              check.addIssue({
                code: "custom",
                path: ["on_success"],
                message: "must be a stage the runner does not take items from",
              });
          }),
        },
      },
    ),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    runners: typeof runnersContract;
  }
}

/**
 * `npm run chaos [-- --minutes N --machines N --older N --agents N --seed N --keep]`: drover under faults. Builds a world
 * (chaos/world.ts), runs scripted agents against it while faults strike, settles, checks, prints a summary;
 * exits 1 when any check failed. `test/chaos.test.ts` runs a short one.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../test/helpers.ts";
import { addOnceTrigger, addOneShotTimer, callOp, createLedger, runAgent } from "./agents.ts";
import { check, settle, type Verdict } from "./checks.ts";
import { type FaultCounts, runFaults } from "./faults.ts";
import { createWorld } from "./world.ts";

export interface ChaosOptions {
  minutes: number;
  machines?: number;
  /** How many of the machines run the drover from before presence refs (a team not all upgraded). */
  older?: number;
  agents?: number;
  seed?: number;
  /** Keep the world's folder (logs, clones, remote) after the run. */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface ChaosReport extends Verdict {
  seed: number;
  settled: boolean;
  faults: FaultCounts;
  seconds: number;
  dir: string;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = _random(seed);
  const log = options.log ?? (() => undefined);
  const started = performance.now();
  const world = await createWorld({ machines: options.machines ?? 4, older: options.older });
  log(`world in ${world.dir}, seed ${seed}`);
  try {
    const ledger = createLedger();
    for (const m of world.machines) {
      // recurring timers, so clock jumps leave missed occurrences behind: one catches up all, one catches up once
      await callOp(
        m,
        "timer.add",
        {
          label: "every minute, all",
          every: "1m",
          catchup: "all",
          action: { webhook: { url: `${world.sinkUrl}/timer/${m.index}` } },
        },
        ledger,
      );
      await callOp(
        m,
        "timer.add",
        {
          label: "every 5 minutes, one",
          every: "5m",
          catchup: "one",
          action: { webhook: { url: `${world.sinkUrl}/timer/${m.index}` } },
        },
        ledger,
      );
      await addOnceTrigger(world, m, `seed-${m.index}`, ledger);
      await addOneShotTimer(world, m, { label: "seed reminder", secs: 10, ledger });
    }
    const end = Date.now() + options.minutes * 60_000;
    const stop = () => Date.now() >= end;
    const agents = world.machines.flatMap((m) =>
      Array.from({ length: options.agents ?? 3 }, (_, a) =>
        runAgent(world, m, { name: `m${m.index}-agent${a}`, ledger, random, stop }),
      ),
    );
    const faults = await runFaults(world, { random, stop, log });
    await Promise.all(agents);
    log("settling");
    const settled = await settle(world);
    const verdict = await check(world, ledger);
    if (!settled) verdict.violations.unshift("the machines did not settle on the remote's head within 120 s");
    return {
      ...verdict,
      seed,
      settled,
      faults,
      seconds: Math.round((performance.now() - started) / 1000),
      dir: world.dir,
    };
  } finally {
    await world.close({ keep: options.keep });
  }
}

export function renderReport(r: ChaosReport): string {
  const figures = Object.entries(r.figures)
    .map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`)
    .join(", ");
  const lines = [
    `chaos: ${r.seconds} s, seed ${r.seed}; ${r.faults.kills} kill -9, ${r.faults.outages} remote outages, ${r.faults.jumps} clock jumps, ${r.faults.hostile_pushes} hostile pushes, ${r.faults.rewinds} rewinds`,
    `  ${figures}`,
    r.violations.length
      ? `FAILED: ${r.violations.length} violations`
      : "passed: P1 nothing lost, P2 one holder, P3 convergence, P4 after every kill -9, P5 no 5xx while the remote was away; timers and once triggers at most once; gateway saw every machine; no teammate's push stopped a machine",
    ...r.violations.map((v) => `  - ${v}`),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const arg = (name: string) =>
    process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : undefined;
  if (!existsSync(BINARY))
    Bun.spawnSync([process.execPath, join(import.meta.dir, "..", "scripts", "build.ts")], {
      stdio: ["inherit", "inherit", "inherit"],
    });
  const report = await runChaos({
    minutes: Number(arg("minutes") ?? 2),
    machines: arg("machines") ? Number(arg("machines")) : undefined,
    older: arg("older") ? Number(arg("older")) : undefined,
    agents: arg("agents") ? Number(arg("agents")) : undefined,
    seed: arg("seed") ? Number(arg("seed")) : undefined,
    keep: process.argv.includes("--keep"),
    log: (line) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
  });
  console.log(renderReport(report));
  process.exit(report.violations.length ? 1 : 0);
}

// --- internal ---

/** mulberry32: a seeded generator, so a failing run's choices can be replayed (its timing cannot). */
function _random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

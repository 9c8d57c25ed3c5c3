/**
 * The faults of the chaos run, one every few seconds: `kill -9` of a daemon (restarted a moment later), the git
 * server stopped and started again, or every daemon's clock jumped forward.
 */
import type { ChaosMachine, World } from "./world.ts";

export interface FaultCounts {
  kills: number;
  outages: number;
  jumps: number;
}

const JUMPS_MS = [20_000, 120_000, 600_000, 2_400_000];

export async function runFaults(world: World, options: { random: () => number; stop: () => boolean; log: (line: string) => void }): Promise<FaultCounts> {
  const { random, log } = options;
  const counts: FaultCounts = { kills: 0, outages: 0, jumps: 0 };
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  while (!options.stop()) {
    await Bun.sleep(1500 + random() * 3500);
    if (options.stop()) break;
    const roll = random();
    if (roll < 0.55) {
      // now and then two at once: the remote then sees a commit from neither for a while
      const victims = random() < 0.2 ? [pick(world.machines), pick(world.machines)] : [pick(world.machines)];
      for (const m of new Set(victims)) await world.kill(m);
      counts.kills += new Set(victims).size;
      log(`kill -9 machine ${[...new Set(victims)].map((m) => m.index).join(", ")}`);
      await Bun.sleep(200 + random() * 2500);
      for (const m of new Set(victims)) await restart(world, m);
    } else if (roll < 0.8) {
      await world.remote.server.stop();
      counts.outages++;
      const secs = 1 + random() * 5;
      log(`git server down for ${secs.toFixed(1)} s`);
      await Bun.sleep(secs * 1000);
      world.remote.server.start();
    } else {
      const ms = pick(JUMPS_MS);
      world.jumpClock(ms);
      counts.jumps++;
      log(`clock +${ms / 1000} s (offset ${world.offset / 1000} s)`);
    }
  }
  return counts;
}

/** Starts a machine again; a port still held by the dying process gets a few more tries. */
export async function restart(world: World, m: ChaosMachine): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await world.start(m);
      return;
    } catch (err) {
      if (tries >= 5) throw err;
      await Bun.sleep(500);
    }
  }
}

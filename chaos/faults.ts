/**
 * The faults of the chaos run, one every few seconds: `kill -9` of a daemon (restarted a moment later), the git
 * server stopped and started again, every daemon's clock jumped forward, or a teammate's hostile push — a commit
 * whose tree holds what no drover writes (links, submodules, executables, a bomb, odd names, a file where a folder
 * goes), or a rewind of the hub branch.
 */
import { type Hostile, hostileEntry, type Mutation, pushPresence, pushTree, rewind } from "../test/intruder.ts";
import type { ChaosMachine, World } from "./world.ts";

export interface FaultCounts {
  kills: number;
  outages: number;
  jumps: number;
  hostile_pushes: number;
  rewinds: number;
}

const JUMPS_MS = [20_000, 120_000, 600_000, 2_400_000];

export async function runFaults(
  world: World,
  options: { random: () => number; stop: () => boolean; log: (line: string) => void },
): Promise<FaultCounts> {
  const { random, log } = options;
  const counts: FaultCounts = { kills: 0, outages: 0, jumps: 0, hostile_pushes: 0, rewinds: 0 };
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
    } else if (roll < 0.9) {
      try {
        if (random() < 0.5) {
          const steps = 1 + Math.floor(random() * 3);
          rewind(world.remote.path, steps);
          counts.rewinds++;
          log(`a teammate rewinds the hub branch by ${steps} commit(s)`);
        } else {
          const mutations = _junk(world, random);
          // on the shared branch, or on a presence ref of a machine nobody runs (as one posing as a teammate would)
          const where = random() < 0.5 ? "drover/hub" : `drover/presence/${INTRUDER_PREFIX}${counts.hostile_pushes}`;
          if (where === "drover/hub") pushTree(world.remote.path, mutations);
          else pushPresence(world.remote.path, where.slice("drover/presence/".length), mutations);
          counts.hostile_pushes++;
          log(`a teammate pushes ${mutations.map((m) => `${m.path} (${m.label})`).join(", ")} to ${where}`);
        }
      } catch (err) {
        log(`the teammate's push lost a race: ${(err as Error).message.split("\n")[0]}`); // the branch moved meanwhile
      }
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

/** Presence refs a hostile push makes are named so: machines no run starts. */
export const INTRUDER_PREFIX = "intruder-";

// --- internal ---

/**
 * Hostile entries at new paths only: a teammate who replaces or deletes the hub's files deletes data, which no
 * check could tell from a lawful change; what must hold is that nothing here reaches a disk or stops a machine.
 */
function _junk(world: World, random: () => number): Mutation[] {
  const n = Math.floor(random() * 1e6).toString(36);
  const slots: Array<[string, Hostile]> = [
    [`notes-${n}`, "folder"],
    [`.git`, "file"],
    [`-rf`, "executable"],
    [`items/z1`, "file"],
    [`items/zz/zz${n}.json`, "symlink"],
    [`items/zz/zz${n}x.json`, "submodule"],
    [`heartbeats/intruder-${n}.json`, "bomb"],
    [`heartbeats/huge-${n}.json`, "oversized"],
    [`heartbeats/run-${n}.json`, "executable"],
    [`heartbeats/folder-${n}.json`, "folder"],
  ];
  const picked = slots.filter(() => random() < 0.35);
  return (picked.length ? picked : [slots[Math.floor(random() * slots.length)]!]).map(([path, kind]) => ({
    path,
    entry: hostileEntry(world.remote.path, kind, { bombBytes: 16 * 1024 * 1024 }),
    label: kind,
  }));
}

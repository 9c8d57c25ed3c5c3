/** core/process.ts: a process group is signalled as a group, never a bare pid that may belong to someone else now. */
import { expect, test } from "bun:test";
import { processAlive, processStart, signalGroup } from "../core/process.ts";

test("signalGroup stops a detached group and leaves a process that leads no group alone", async () => {
  const leader = Bun.spawn(["sh", "-c", "sleep 30 & sleep 30; wait"], { detached: true });
  const stranger = Bun.spawn(["sleep", "30"]); // in this process's group: its pid names no group
  try {
    await Bun.sleep(50);
    signalGroup(leader.pid, "SIGKILL");
    expect(await leader.exited).not.toBe(0);
    signalGroup(stranger.pid, "SIGKILL");
    await Bun.sleep(50);
    expect(processAlive(stranger.pid, processStart(stranger.pid))).toBe(true);
  } finally {
    stranger.kill("SIGKILL");
    leader.kill("SIGKILL");
  }
});

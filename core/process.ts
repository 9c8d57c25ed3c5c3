/**
 * @module Processes by pid and start time: a pid alone is reused by the OS, so a process drover started (a daemon,
 * a run) is recognised by the pair — Linux: field 22 of `/proc/<pid>/stat`, clock ticks since boot, kept as text.
 * And the environment such a process gets (never drover's own credentials), and the end of what it writes.
 */
import { readRegularFile } from "./files.ts";

/** When the process started, as the OS tells it; null where it cannot be read (no such process, no `/proc`). */
export function processStart(pid: number): string | null {
  return _procStat(pid)?.start ?? null;
}

/**
 * Whether `pid` is still the process that started at `start` (null: unknown, the pid is all there is to go by).
 * A zombie (killed, not yet reaped) is not alive.
 */
export function processAlive(pid: number, start: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  const stat = _procStat(pid);
  if (!stat) return true; // no /proc here
  if (stat.state === "Z") return false;
  return start === null || start === stat.start;
}

/** Secrets of this machine's drover that no program it starts (an agent, a merge check) may see. */
const _SECRETS = ["DROVER_GIT_TOKEN", "DROVER_GATEWAY_TOKEN"];

/** The environment for a program drover starts: this process's, without drover's own secrets, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of _SECRETS) delete env[name];
  return { ...env, ...extra };
}

/**
 * Signals a whole process group (a process drover started detached leads its own: a run, a merge check). Never the
 * bare pid: a group that is gone means its leader is too, and the pid may be someone else's by now.
 */
export function signalGroup(pid: number, name: "SIGTERM" | "SIGKILL"): void {
  try {
    process.kill(-pid, name);
  } catch {
    // already gone
  }
}

/**
 * The end of what a process writes: its streams read as they come, interleaved in the order chunks arrive, and at
 * most the last `maxBytes` kept — a program that prints gigabytes costs no more memory than that. Resolves once
 * every stream ended; a character cut in two where the tail begins is dropped.
 */
export async function outputTail(streams: ReadableStream<Uint8Array>[], maxBytes: number): Promise<string> {
  let chunks: Uint8Array[] = [];
  let kept = 0;
  let seen = 0;
  await Promise.all(
    streams.map(async (stream) => {
      for await (const chunk of stream) {
        chunks.push(chunk);
        kept += chunk.byteLength;
        seen += chunk.byteLength;
        // pieces pile up to twice the bound: the tail is copied out once in a while, not at every chunk
        if (kept <= 2 * maxBytes) continue;
        chunks = [_lastBytes(chunks, maxBytes)];
        kept = maxBytes;
      }
    }),
  );
  const text = new TextDecoder().decode(_lastBytes(chunks, maxBytes));
  return seen > maxBytes ? text.replace(/^\uFFFD{1,3}/, "") : text;
}

// --- internal ---

function _lastBytes(chunks: Uint8Array[], maxBytes: number): Uint8Array {
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.byteLength - maxBytes));
}

/** The state and start time of a process from `/proc/<pid>/stat`; null when there is no such file. */
function _procStat(pid: number): { state: string; start: string } | null {
  const read = readRegularFile(`/proc/${pid}/stat`, { maxBytes: 4096 });
  if (!read || "error" in read) return null;
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so the fields are counted after the last ")"
  const fields = read.text.slice(read.text.lastIndexOf(")") + 2).split(" ");
  const [state, start] = [fields[0], fields[19]]; // fields 3 and 22 of proc(5)
  return state && start ? { state, start } : null;
}

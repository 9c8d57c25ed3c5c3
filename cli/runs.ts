/**
 * @module The runs' commands beyond their ops (SPEC §13): `drover run log <run> [--follow]` prints a run's log
 * (`.drover/runs/<run>.log`, read from this machine's disk: runs are its own) and, following, new output until
 * the run has ended.
 */
import { closeSync, readSync } from "node:fs";
import { type CommandDef, defineCommand } from "citty";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import { openRegularFile } from "../core/files.ts";
import { getRun } from "../features/runners/store.ts";
import { withRuntime } from "./project.ts";

/** How often `--follow` looks at the run's state (its row) and its log. */
const POLL_MS = 250;
/** A log is read in pieces of this size, never whole. */
const CHUNK_BYTES = 64 * 1024;
/** The end of what was printed, kept to find the place again after the log was cut back to its newest half. */
const SEEN_BYTES = 1024;
/** Polls a cut-back log may take to be whole again before following goes on from its start. */
const RESYNC_POLLS = 4;

interface RunView {
  run: string;
  state: "running" | "ended";
  log: string;
}

const log = defineCommand({
  meta: { name: "log", description: "Print a run's log; with --follow, new output as it comes, until the run ends" },
  args: {
    run: { type: "positional", required: false, description: "Run id (run-xxxxxxxx)" },
    follow: { type: "boolean", alias: "f", description: "Keep printing new output until the run has ended" },
  },
  async run({ args, rawArgs }) {
    for (const arg of rawArgs) {
      const flag = arg.split("=")[0]!;
      if (arg.startsWith("-") && !["-f", "--follow", "--no-follow", "--run"].includes(flag))
        throw new DroverError("invalid_input", `Unknown option "${flag}": known are --follow`);
    }
    const run = typeof args.run === "string" ? args.run : undefined;
    if (!run) throw new DroverError("invalid_input", 'Missing the run: "drover run log <run> [--follow]"');
    const out = createTerminalWriter();
    try {
      await withRuntime(async (rt) => {
        // the op checks the id and finds the run; following needs only its row (run.get also reads the log's tail)
        const row = (await rt.ops.run("run.get", { run }, { via: "cli" })) as RunView;
        const poll = () => getRun(rt.ctx.db, run);
        await printLog(row, { follow: Boolean(args.follow), write: out.write, poll });
      });
      await out.end();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err; // `| head`: the reader has what it wanted
    }
  },
});

/** Commands added to the op groups: `drover run log`. */
export const runGroupCommands: Record<string, Record<string, CommandDef<any>>> = { run: { log } };

/**
 * Prints a run's log through `write`: what is there, and with `follow` what comes — the run's row looked at again
 * with `poll` — until the run has ended and its log was read to the end. Reads in bounded pieces; survives the log
 * being cut back to its newest half.
 */
export async function printLog(
  first: RunView,
  options: {
    follow: boolean;
    write: (bytes: Uint8Array) => Promise<void>;
    poll: () => RunView | null;
    pollMs?: number;
  },
): Promise<void> {
  let row = first;
  const reader = createLogReader(row.log, options.write);
  if (!row.log) throw _removed(row.run, "it was removed (drover keeps the logs of the newest 200 ended runs)");
  if (!options.follow) {
    if (!(await reader.read()) && row.state === "ended")
      throw _removed(row.run, `"${row.log}" is not there (removed, or the run never started)`);
    return;
  }
  for (;;) {
    const ended = row.state === "ended"; // read before the log: once ended, the log is whole
    const there = await reader.read();
    if (ended && (reader.caughtUp() || !there)) {
      if (!there && reader.offset() === 0)
        throw _removed(row.run, `"${row.log}" is not there (removed, or the run never started)`);
      return;
    }
    await Bun.sleep(options.pollMs ?? POLL_MS);
    const now = options.poll();
    if (!now?.log) return; // pruned once ended (the log, or the whole row): nothing more will come
    row = now;
  }
}

/**
 * Follows one log file: each `read` prints what was added since the last one. The supervisor cuts a log that
 * outgrew its bound back to its newest half (same file, rewritten): the bytes before the reader's place then
 * no longer end with what it printed, and it looks for that in the new file to go on just after it.
 */
export function createLogReader(file: string, write: (bytes: Uint8Array) => Promise<void>) {
  let offset = 0;
  let size = 0;
  let seen = Buffer.alloc(0);
  let lost = 0; // polls since the log was found cut back and the place not found again
  return {
    offset: () => offset,
    caughtUp: () => lost === 0 && offset >= size,
    /** Prints what was added; false when the file is not there. */
    async read(): Promise<boolean> {
      // a regular file only: a FIFO or a link planted at the log's path must not hang or redirect the reader
      const opened = openRegularFile(file);
      if (opened === null || "error" in opened) return false;
      const { fd } = opened;
      try {
        size = opened.size;
        if (offset > 0 && !_endsWith(fd, offset, seen)) {
          const found = _find(fd, size, seen);
          if (found !== null) {
            offset = found;
            lost = 0;
          } else if (++lost < RESYNC_POLLS)
            return true; // being rewritten: look again next time
          else {
            process.stderr.write("drover: the log was cut back while it was followed: some output was not shown\n");
            offset = 0;
            lost = 0;
          }
        }
        const buffer = Buffer.alloc(CHUNK_BYTES);
        while (offset < size) {
          const n = readSync(fd, buffer, 0, Math.min(CHUNK_BYTES, size - offset), offset);
          if (n <= 0) break;
          const bytes = buffer.subarray(0, n);
          await write(bytes);
          offset += n;
          seen = Buffer.concat([seen, bytes]).subarray(-SEEN_BYTES);
        }
        return true;
      } finally {
        closeSync(fd);
      }
    },
  };
}

/**
 * Writes log bytes to stdout as text a terminal cannot be driven by: controls escaped (an agent's output may
 * quote an item's title), line breaks and tabs kept. Waits for stdout to take each piece.
 */
export function createTerminalWriter() {
  const decoder = new TextDecoder();
  const put = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const safe = text.replace(/\r\n/g, "\n").replace(/[^\n\t]+/g, escapeControls);
      if (!safe) return resolve();
      process.stdout.write(safe, (err) => (err ? reject(err) : resolve()));
    });
  return {
    write: (bytes: Uint8Array) => put(decoder.decode(bytes, { stream: true })),
    end: () => put(decoder.decode()),
  };
}

// --- internal ---

function _removed(run: string, why: string): DroverError {
  return new DroverError("not_found", `Cannot show the log of run "${run}": ${why}`);
}

/** Whether the `tail` bytes end just before `offset` in the file. */
function _endsWith(fd: number, offset: number, tail: Buffer): boolean {
  const at = offset - tail.length;
  if (at < 0) return false;
  const bytes = Buffer.alloc(tail.length);
  return readSync(fd, bytes, 0, tail.length, at) === tail.length && bytes.equals(tail);
}

/** Where the first copy of `needle` ends in the file's first `size` bytes, read in pieces; null when absent. */
function _find(fd: number, size: number, needle: Buffer): number | null {
  if (!needle.length) return null;
  const buffer = Buffer.alloc(CHUNK_BYTES + needle.length);
  let carried = 0;
  for (let at = 0; at < size; ) {
    const n = readSync(fd, buffer, carried, Math.min(CHUNK_BYTES, size - at), at);
    if (n <= 0) break;
    const window = buffer.subarray(0, carried + n);
    const hit = window.indexOf(needle);
    if (hit >= 0) return at - carried + hit + needle.length;
    at += n;
    carried = Math.min(needle.length - 1, window.length);
    window.copyWithin(0, window.length - carried);
  }
  return null;
}

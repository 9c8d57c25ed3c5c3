/**
 * @module One run's process: started in its own process group (so stopping it stops what it started), its stdout
 * and stderr written to a bounded log and handed line by line to the caller, and stopped with SIGTERM, then
 * SIGKILL. The log keeps its newest part when it outgrows its bound: the end says how the run went.
 */
import { closeSync, constants, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { openRegularFile } from "../../core/files.ts";
import { childEnv, signalGroup } from "../../core/process.ts";

/** A run's log is cut back to half of this when it grows past it. */
export const MAX_LOG_BYTES = 4 * 1024 * 1024;

/** How a run's process ended: its exit code, or the signal that ended it. */
export type Exit = { exitCode: number | null; signal: string | null };

export interface RunProcess {
  pid: number;
  /** Resolves when the process ended and its output was read. */
  exited: Promise<Exit>;
  signal(name: "SIGTERM" | "SIGKILL"): void;
}

export function startProcess(options: {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  log: string;
  onLine: (line: string) => void;
}): RunProcess {
  const log = _boundedLog(options.log);
  const proc = Bun.spawn(options.argv, {
    cwd: options.cwd,
    env: childEnv(options.env),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  const pump = (stream: ReadableStream<Uint8Array>) => _pump(stream, log.write, options.onLine);
  const exited = Promise.all([pump(proc.stdout), pump(proc.stderr), proc.exited]).then(() => {
    log.close();
    return {
      exitCode: proc.signalCode ? null : proc.exitCode,
      signal: proc.signalCode ? String(proc.signalCode) : null,
    };
  });
  return {
    pid: proc.pid,
    exited,
    signal(name) {
      signalGroup(proc.pid, name);
    },
  };
}

/** The last `bytes` of a log, as text (for a note, `run.get`); "" when it is not a regular file (or gone). */
export function logTail(file: string, bytes: number): string {
  const opened = openRegularFile(file);
  if (opened === null || "error" in opened) return "";
  const { fd, size } = opened;
  try {
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, size - length);
    const text = buffer.subarray(0, read).toString("utf8");
    return size > bytes ? text.slice(text.indexOf("\n") + 1) : text; // from the first whole line
  } catch {
    return "";
  } finally {
    closeSync(fd);
  }
}

// --- internal ---

async function _pump(
  stream: ReadableStream<Uint8Array>,
  write: (chunk: Uint8Array) => void,
  onLine: (l: string) => void,
) {
  const decoder = new TextDecoder();
  let partial = "";
  for await (const chunk of stream) {
    write(chunk);
    partial += decoder.decode(chunk, { stream: true });
    let at = partial.indexOf("\n");
    while (at >= 0) {
      _safe(onLine, partial.slice(0, at).replace(/\r$/, ""));
      partial = partial.slice(at + 1);
      at = partial.indexOf("\n");
    }
    if (partial.length > 1024 * 1024) partial = partial.slice(-1024 * 1024); // a line without end is not read whole
  }
  if (partial) _safe(onLine, partial);
}

function _safe(onLine: (l: string) => void, line: string) {
  try {
    onLine(line);
  } catch {
    // a reader's error must not stop the log
  }
}

/**
 * The run's log, through one descriptor for its whole life: a new regular file (never a FIFO or link planted at
 * its path), and cut back in place — whatever is put at the path later is never opened, so it can neither hang the
 * daemon nor receive the run's output.
 */
function _boundedLog(file: string) {
  const { O_RDWR, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  let fd: number | null = openSync(file, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let size = 0;
  return {
    write(chunk: Uint8Array) {
      if (fd === null) return;
      try {
        writeSync(fd, chunk);
        size += chunk.byteLength;
        if (size <= MAX_LOG_BYTES) return;
        const kept = Buffer.alloc(MAX_LOG_BYTES / 2);
        const read = readSync(fd, kept, 0, kept.byteLength, size - kept.byteLength);
        const note = Buffer.from(`[drover: the log passed ${MAX_LOG_BYTES} bytes; older output was dropped]\n`);
        ftruncateSync(fd, 0);
        writeSync(fd, note); // appended: at the start of the emptied file
        writeSync(fd, kept, 0, read);
        size = note.byteLength + read;
      } catch {
        // a full disk: the run goes on unlogged (its output is still read), rather than losing its end
        if (fd !== null) closeSync(fd);
        fd = null;
      }
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

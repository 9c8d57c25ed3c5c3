/** @module A small leveled logger writing one line per entry to stderr. */
import { escapeControls } from "./escape.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Warns once per distinct key for the life of the logger (malformed files are reported once). */
  warnOnce(key: string, msg: string, fields?: Record<string, unknown>): void;
  child(scope: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
}

export function createLogger(scope: string, options: LoggerOptions = {}): Logger {
  const level = options.level ?? (process.env.DROVER_LOG as LogLevel | undefined) ?? "info";
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const seen = new Set<string>();
  function log(at: LogLevel, msg: string, fields?: Record<string, unknown>) {
    if (ORDER[at] < (ORDER[level] ?? 20)) return;
    const extra = fields ? " " + _fields(fields) : "";
    // messages carry names from files and other machines: never raw terminal sequences
    write(escapeControls(`${new Date().toISOString()} ${at.padEnd(5)} [${scope}] ${msg}${extra}`));
  }
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    warnOnce(key, m, f) {
      if (seen.has(key)) return;
      if (seen.size > 10_000) seen.clear();
      seen.add(key);
      log("warn", m, f);
    },
    child: (sub) => createLogger(`${scope}:${sub}`, { level, write }),
  };
}

// --- internal ---

function _fields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${v instanceof Error ? JSON.stringify(v.message) : JSON.stringify(v)}`)
    .join(" ");
}

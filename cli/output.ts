/**
 * @module How CLI results look: JSON with `--json`, otherwise a readable table or key/value lines. Text from
 * stored state (titles, labels, notes, agent ids, file names) may hold escape sequences meant for the terminal;
 * everything printed here goes through `escapeControls` first.
 */
import { escapeControls } from "../core/escape.ts";

/** Renders a result for a terminal. */
export function renderResult(result: unknown, columns?: string[]): string {
  if (result === undefined || result === null) return "done";
  if (Array.isArray(result)) {
    if (!result.length) return "(none)";
    if (typeof result[0] !== "object") return result.map((v) => escapeControls(String(v))).join("\n");
    return renderTable(
      result as Record<string, unknown>[],
      columns ?? _scalarKeys(result[0] as Record<string, unknown>),
    );
  }
  if (typeof result === "object") {
    const entries = Object.entries(result as Record<string, unknown>).map(([k, v]) => [escapeControls(k), v] as const);
    const width = Math.max(...entries.map(([k]) => k.length));
    return entries.map(([k, v]) => `${k.padEnd(width)}  ${_cell(v, 200)}`).join("\n");
  }
  return escapeControls(String(result));
}

/** A fixed-width table of the given (dotted) columns. */
export function renderTable(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((row) => columns.map((c) => _cell(_at(row, c), 60)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n");
}

// --- internal ---

function _scalarKeys(row: Record<string, unknown>): string[] {
  return Object.keys(row).filter((k) => row[k] === null || typeof row[k] !== "object" || Array.isArray(row[k]));
}

function _at(row: Record<string, unknown>, path: string): unknown {
  let v: unknown = row;
  for (const part of path.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

function _cell(v: unknown, max: number): string {
  let s: string;
  if (v === null || v === undefined) s = "-";
  else if (Array.isArray(v)) s = v.every((x) => typeof x !== "object") ? v.join(",") || "-" : JSON.stringify(v);
  else if (typeof v === "object") s = JSON.stringify(v);
  else s = String(v);
  s = escapeControls(s).replace(/\s+/g, " ");
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

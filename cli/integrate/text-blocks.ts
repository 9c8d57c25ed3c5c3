/**
 * @module Blocks drover manages inside files it shares with people (AGENTS.md, CLAUDE.md, Codex's config.toml):
 * written between markers, replaced on every run, everything outside them left exactly as it was.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../../core/files.ts";

export interface Markers {
  start: string;
  end: string;
}

/** The markers of drover's workflow block in AGENTS.md or CLAUDE.md. */
export const MD_MARKERS: Markers = { start: "<!-- drover:start -->", end: "<!-- drover:end -->" };

/** Puts `body` between the markers of a file (replacing what was there, or at `where`); false when nothing changed. */
export function upsertBlock(file: string, body: string, options: Markers & { where: "top" | "bottom" }): boolean {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const next = withBlock(text, body, options);
  if (next === text) return false;
  writeFileAtomic(file, next);
  return true;
}

/** The block between the markers of a file, or null. */
export function readBlock(file: string, options: Markers): string | null {
  return existsSync(file) ? blockOf(readFileSync(file, "utf8"), options) : null;
}

/** `text` with `body` between the markers (replacing what was there, or at `where`). */
export function withBlock(text: string, body: string, options: Markers & { where: "top" | "bottom" }): string {
  const block = `${options.start}\n${body.trimEnd()}\n${options.end}\n`;
  const from = text.indexOf(options.start);
  const to = text.indexOf(options.end, from);
  if (from >= 0 && to > from)
    return text.slice(0, from) + block + text.slice(to + options.end.length).replace(/^\n/, "");
  if (options.where === "top") return block + (text ? "\n" + text : "");
  return text + (text && !text.endsWith("\n") ? "\n" : "") + (text ? "\n" : "") + block;
}

/** The block between the markers in `text`, or null. */
export function blockOf(text: string, options: Markers): string | null {
  const from = text.indexOf(options.start);
  const to = text.indexOf(options.end, from);
  return from >= 0 && to > from ? text.slice(from + options.start.length, to).trim() : null;
}

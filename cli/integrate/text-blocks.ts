/**
 * @module Blocks drover manages inside files it shares with people (AGENTS.md, CLAUDE.md, Codex's config.toml):
 * written between markers, replaced on every run, everything outside them left exactly as it was.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../../core/files.ts";

/** Puts `body` between the markers (replacing what was there, or at `where`); false when nothing changed. */
export function upsertBlock(
  file: string,
  body: string,
  options: { start: string; end: string; where: "top" | "bottom" },
): boolean {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const block = `${options.start}\n${body.trimEnd()}\n${options.end}\n`;
  const from = text.indexOf(options.start);
  const to = text.indexOf(options.end, from);
  let next: string;
  if (from >= 0 && to > from)
    next = text.slice(0, from) + block + text.slice(to + options.end.length).replace(/^\n/, "");
  else if (options.where === "top") next = block + (text ? "\n" + text : "");
  else next = text + (text && !text.endsWith("\n") ? "\n" : "") + (text ? "\n" : "") + block;
  if (next === text) return false;
  writeFileAtomic(file, next);
  return true;
}

/** The block between the markers, or null. */
export function readBlock(file: string, options: { start: string; end: string }): string | null {
  if (!existsSync(file)) return null;
  const text = readFileSync(file, "utf8");
  const from = text.indexOf(options.start);
  const to = text.indexOf(options.end, from);
  return from >= 0 && to > from ? text.slice(from + options.start.length, to).trim() : null;
}

/** @module Canonical JSON for hub files (sorted keys, 2-space indent, final newline), and reading them back. */
import type { z } from "zod";

export function canonicalJson(value: unknown): string {
  return JSON.stringify(_sorted(value), null, 2) + "\n";
}

/** Parses a hub file's text against its schema: the value, or one readable reason it cannot be used. */
export function parseJsonFile<S extends z.ZodType>(
  text: string,
  schema: S,
  maxBytes: number,
): { value: z.output<S> } | { error: string } {
  if (text.length > maxBytes) return { error: `file too large (${text.length} bytes)` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { error: "not valid JSON" };
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { value: parsed.data };
  const i = parsed.error.issues[0]!;
  return { error: `invalid "${i.path.join(".")}": ${i.message}` };
}

// --- internal ---

function _sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(_sorted);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = _sorted(v);
    }
    return out;
  }
  return value;
}

/** @module Canonical JSON for hub files: sorted keys, 2-space indent, final newline. */

export function canonicalJson(value: unknown): string {
  return JSON.stringify(_sorted(value), null, 2) + "\n";
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

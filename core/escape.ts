/**
 * @module Text from stored state or from other machines (titles, labels, notes, agent ids, file names) may hold
 * escape sequences meant for a terminal: whatever drover prints — CLI output, error lines, log lines — goes
 * through `escapeControls` first.
 */

/** C0 controls, DEL, C1 controls, and the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

/**
 * Text made safe for a terminal: each control character becomes a visible escape — `\t`, `\n`, `\r`, else
 * `\xNN` (C0, DEL, C1) or `\uNNNN` (bidi controls). Everything else, backslashes included, is left as it is.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`);
  });
}

/**
 * @module What the two scripted model APIs share: the recorded request's common fields, SSE framing, and flattening a
 * content value (a string or a list of blocks) to the text a test asserts on.
 */

export interface RecordedBase {
  /** When it arrived (ms since the epoch): tests compare it with hook and MCP timestamps. */
  at: number;
  /** Path and query, e.g. `/v1/messages?beta=true`. */
  path: string;
  headers: Record<string, string>;
  /** The parsed JSON body as the client sent it. */
  body: any;
}

/** A script answering with `turns` in order, then `final` for every request after them: "call this tool, then say done". */
export function scriptedSequence<T>(turns: T[], final: T): () => T {
  let next = 0;
  return function sequence(): T {
    return turns[next++] ?? final;
  };
}

/** One server-sent event; `event` is omitted when the API names events only in `data.type`. */
export function sseFrame(event: string | null, data: unknown): string {
  return (event ? `event: ${event}\n` : "") + `data: ${JSON.stringify(data)}\n\n`;
}

/**
 * The text of a content value: a string, or each block's `text` (`text`, `input_text`, `output_text`) and nested
 * `content` (a tool result's), joined with newlines; other blocks (images) are skipped.
 */
export function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((b) => {
      if (typeof b === "string") return b;
      if (typeof b?.text === "string") return b.text;
      return b?.content !== undefined ? textOf(b.content) : "";
    })
    .filter((t) => t !== "")
    .join("\n");
}

/**
 * @module A scripted Anthropic Messages API on 127.0.0.1, enough for the real Claude Code CLI to run a whole session
 * offline: each main request is answered by the test's script (a text, a tool call, or a 429), side requests (titles,
 * summaries, which come without the session's tools) by a short text, and every request is recorded for assertions.
 */
import { type RecordedBase, scriptedSequence, sseFrame, textOf } from "./wire.ts";

/** What the scripted model answers to one request. */
export type AnthropicTurn =
  | { type: "text"; text: string; headers?: Record<string, string> }
  | { type: "tool_use"; name: string; input?: Record<string, unknown>; text?: string; headers?: Record<string, string> }
  | { type: "rate_limit"; message?: string; retryAfter?: number; headers?: Record<string, string> };

export interface AnthropicRequest extends RecordedBase {
  /** The system prompt as one text (Claude Code sends it as blocks). */
  system: string;
  /**
   * Everything the model reads as text: the system prompt, then every message (Claude Code 2.1 also sends
   * `role: "system"` messages mid-conversation: environment, hook context), tool results included.
   */
  text: string;
  messages: Array<{ role: string; content: unknown }>;
  /** Names of the tools offered, MCP ones as `mcp__<server>__<tool>`. */
  tools: string[];
  /** A title/summary request rather than a turn of the session: it offers none of the session's tools. */
  side: boolean;
  /** The tool results the last user message carries, their content flattened to text. */
  toolResults: Array<{ toolUseId: string; content: string; isError: boolean }>;
  stream: boolean;
  /** What the server answered (the script's turn, or the side text). */
  answer?: AnthropicTurn;
}

export type AnthropicScript = (request: AnthropicRequest) => AnthropicTurn | Promise<AnthropicTurn>;

export interface AnthropicServer {
  url: string;
  /** Every `/v1/messages` request, side ones included, in arrival order. */
  requests: AnthropicRequest[];
  /** The main (non-side) requests: one per model turn of the session. */
  turns(): AnthropicRequest[];
  /** `METHOD /path` of every other request (HEAD probes, token counts, unknown routes), for debugging. */
  other: string[];
  stop(): Promise<void>;
}

/**
 * Starts the server; `script` answers each main request. `sideText` answers side requests (a harmless title);
 * `isSide` overrides how one is told apart (default: it offers neither `Bash` nor an MCP tool). A script that
 * throws gets a 500 `api_error` sent back, with its message, so the session fails where the test can see why.
 */
export function startAnthropic(
  script: AnthropicScript,
  options: { sideText?: string; isSide?: (body: any) => boolean } = {},
): AnthropicServer {
  const requests: AnthropicRequest[] = [];
  const other: string[] = [];
  let seq = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // a streamed answer is written at once, but a slow script must not have its socket cut
    idleTimeout: 120,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/v1/messages") other.push(`${req.method} ${url.pathname}${url.search}`);
      if (req.method === "HEAD" || (req.method === "GET" && url.pathname === "/")) return new Response(null);
      if (req.method === "POST" && url.pathname === "/v1/messages/count_tokens") {
        const body = await req.json().catch(() => ({}));
        return Response.json({ input_tokens: Math.ceil(JSON.stringify(body).length / 4) });
      }
      if (req.method !== "POST" || url.pathname !== "/v1/messages") {
        return _error(404, "not_found_error", `No route for ${req.method} ${url.pathname}`);
      }
      const body = (await req.json()) as any;
      const recorded = _record(req, url, body, options.isSide ?? _isSide);
      requests.push(recorded);
      let turn: AnthropicTurn;
      try {
        turn = recorded.side ? { type: "text", text: options.sideText ?? "Scripted session" } : await script(recorded);
      } catch (err) {
        return _error(500, "api_error", `Scripted model failed: ${(err as Error).message}`);
      }
      recorded.answer = turn;
      if (turn.type === "rate_limit") {
        const message = turn.message ?? "Number of request tokens has exceeded your rate limit";
        return _error(429, "rate_limit_error", message, {
          "retry-after": String(turn.retryAfter ?? 60),
          ...turn.headers,
        });
      }
      const id = `msg_scripted_${++seq}`;
      const model = String(body.model ?? "claude-scripted");
      const blocks = _blocks(turn, seq);
      const stopReason = turn.type === "tool_use" ? "tool_use" : "end_turn";
      const headers = { "request-id": `req_scripted_${seq}`, ...turn.headers };
      if (!recorded.stream) {
        return Response.json(
          { id, type: "message", role: "assistant", model, content: blocks, stop_reason: stopReason, ..._msgTail() },
          { headers },
        );
      }
      return new Response(_sse(id, model, blocks, stopReason), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers },
      });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    other,
    turns: () => requests.filter((r) => !r.side),
    stop: () => server.stop(true),
  };
}

/**
 * A script answering the session's main requests with `turns` in order, then `final` for any request after them:
 * the usual "call this tool, then say done".
 */
export function anthropicSequence(turns: AnthropicTurn[], final: AnthropicTurn = { type: "text", text: "Done." }) {
  return scriptedSequence(turns, final);
}

// --- internal ---

type Block = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: unknown };

function _record(req: Request, url: URL, body: any, isSide: (body: any) => boolean): AnthropicRequest {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const last = messages.at(-1);
  const toolResults = Array.isArray(last?.content)
    ? last.content
        .filter((b: any) => b?.type === "tool_result")
        .map((b: any) => ({ toolUseId: String(b.tool_use_id), content: textOf(b.content), isError: !!b.is_error }))
    : [];
  return {
    at: Date.now(),
    path: url.pathname + url.search,
    headers: Object.fromEntries(req.headers),
    body,
    system: textOf(body.system),
    text: [textOf(body.system), ...messages.map((m: any) => textOf(m?.content))].join("\n"),
    messages,
    tools: Array.isArray(body.tools) ? body.tools.map((t: any) => String(t.name)) : [],
    side: isSide(body),
    toolResults,
    stream: body.stream === true,
  };
}

/** Titles, summaries and other helper calls go out without the session's `Bash` and MCP tools. */
function _isSide(body: any): boolean {
  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  return !tools.some((t) => t?.name === "Bash" || String(t?.name).startsWith("mcp__"));
}

function _blocks(turn: Exclude<AnthropicTurn, { type: "rate_limit" }>, seq: number): Block[] {
  if (turn.type === "text") return [{ type: "text", text: turn.text }];
  const blocks: Block[] = turn.text ? [{ type: "text", text: turn.text }] : [];
  blocks.push({ type: "tool_use", id: `toolu_scripted_${seq}`, name: turn.name, input: turn.input ?? {} });
  return blocks;
}

function _msgTail() {
  return {
    stop_sequence: null,
    usage: { input_tokens: 100, output_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };
}

function _sse(id: string, model: string, blocks: Block[], stopReason: string): string {
  // every Messages event repeats its name in `data.type`
  const ev = (type: string, fields: Record<string, unknown> = {}) => sseFrame(type, { type, ...fields });
  const { usage, stop_sequence } = _msgTail();
  const message = { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence };
  const frames = [ev("message_start", { message: { ...message, usage: { ...usage, output_tokens: 1 } } })];
  blocks.forEach((block, index) => {
    if (block.type === "text") {
      frames.push(ev("content_block_start", { index, content_block: { type: "text", text: "" } }));
      frames.push(ev("content_block_delta", { index, delta: { type: "text_delta", text: block.text } }));
    } else {
      frames.push(ev("content_block_start", { index, content_block: { ...block, input: {} } }));
      const delta = { type: "input_json_delta", partial_json: JSON.stringify(block.input) };
      frames.push(ev("content_block_delta", { index, delta }));
    }
    frames.push(ev("content_block_stop", { index }));
  });
  const delta = { stop_reason: stopReason, stop_sequence };
  frames.push(ev("message_delta", { delta, usage: { output_tokens: usage.output_tokens } }));
  frames.push(ev("message_stop"));
  return frames.join("");
}

function _error(status: number, type: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ type: "error", error: { type, message } }, { status, headers });
}

/**
 * @module A scripted OpenAI Responses API on 127.0.0.1 for the real Codex CLI (`wire_api = "responses"`): each
 * `POST /v1/responses` is answered by the test's script with a message or a function call, streamed as the SSE
 * events Codex reads, and recorded for assertions.
 */
import { type RecordedBase, scriptedSequence, sseFrame, textOf } from "./wire.ts";

/** What the scripted model answers to one request. */
export type OpenAITurn =
  | { type: "text"; text: string }
  /**
   * A function call. `name` is the tool's name as offered (see `OpenAIRequest.tools`): an MCP tool is called as
   * `mcp__<server>__<tool>`, split into the namespace and the function for Codex's namespaced tools.
   */
  | { type: "function_call"; name: string; arguments?: Record<string, unknown>; text?: string }
  /** An HTTP error: `{ error: { type: code, code, message, ...fields } }` (`fields`: e.g. `resets_at`). */
  | {
      type: "error";
      status: number;
      code?: string;
      message?: string;
      fields?: Record<string, unknown>;
      headers?: Record<string, string>;
    };

export interface OpenAIRequest extends RecordedBase {
  /** The `instructions` field when sent; Codex 0.171 sends none: its prompt is the first `developer` message. */
  instructions: string;
  input: any[];
  /** Everything the model reads as text: the instructions, then every input item's text and function output. */
  text: string;
  /** Every tool offered, flattened: plain functions by name, namespaced ones as `<namespace>__<name>`. */
  tools: string[];
  /** The outputs of the function calls the input ends with, flattened to text. */
  toolResults: Array<{ callId: string; output: string }>;
  /** What the server answered. */
  answer?: OpenAITurn;
}

export type OpenAIScript = (request: OpenAIRequest) => OpenAITurn | Promise<OpenAITurn>;

export interface OpenAIServer {
  /** The base URL for Codex's provider, ending in `/v1`. */
  url: string;
  requests: OpenAIRequest[];
  /** `METHOD /path` of every other request (model lists, unknown routes), for debugging. */
  other: string[];
  stop(): Promise<void>;
}

export function startOpenAI(script: OpenAIScript): OpenAIServer {
  const requests: OpenAIRequest[] = [];
  const other: string[] = [];
  let seq = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 120,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/v1/responses") other.push(`${req.method} ${url.pathname}${url.search}`);
      if (req.method === "GET" && url.pathname === "/v1/models") return Response.json({ object: "list", data: [] });
      if (req.method !== "POST" || url.pathname !== "/v1/responses") {
        return Response.json({ error: { message: `No route for ${req.method} ${url.pathname}` } }, { status: 404 });
      }
      const body = (await req.json()) as any;
      const recorded = _record(req, url, body);
      requests.push(recorded);
      let turn: OpenAITurn;
      try {
        turn = await script(recorded);
      } catch (err) {
        // the session fails where the test can see why
        const error = { type: "server_error", code: null, message: `Scripted model failed: ${(err as Error).message}` };
        return Response.json({ error }, { status: 500 });
      }
      recorded.answer = turn;
      if (turn.type === "error") {
        const code = turn.code ?? "server_error";
        const error = { type: code, code, message: turn.message ?? "", ...turn.fields };
        return Response.json({ error }, { status: turn.status, headers: turn.headers });
      }
      const id = `resp_scripted_${++seq}`;
      return new Response(_sse(id, _items(turn, seq, body.tools)), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    },
  });
  return { url: `http://127.0.0.1:${server.port}/v1`, requests, other, stop: () => server.stop(true) };
}

/** Answers with `turns` in order, then `final` for every request after them. */
export function openaiSequence(turns: OpenAITurn[], final: OpenAITurn = { type: "text", text: "Done." }) {
  return scriptedSequence(turns, final);
}

// --- internal ---

function _record(req: Request, url: URL, body: any): OpenAIRequest {
  const input: any[] = Array.isArray(body.input) ? body.input : [];
  // the outputs that follow the last message: the results of the model's previous turn
  const lastMessage = input.findLastIndex((i) => i?.type === "message" || i?.role !== undefined);
  const toolResults = input
    .slice(lastMessage + 1)
    .filter((i) => i?.type === "function_call_output")
    .map((i) => ({ callId: String(i.call_id), output: textOf(i.output) }));
  const instructions = typeof body.instructions === "string" ? body.instructions : "";
  return {
    at: Date.now(),
    path: url.pathname + url.search,
    headers: Object.fromEntries(req.headers),
    body,
    instructions,
    input,
    text: [instructions, ...input.map((i) => textOf(i?.type === "function_call_output" ? i.output : i?.content))].join(
      "\n",
    ),
    tools: _toolNames(body.tools),
    toolResults,
  };
}

function _toolNames(tools: unknown): string[] {
  if (!Array.isArray(tools)) return [];
  return tools.flatMap((t: any) => {
    if (Array.isArray(t?.tools)) return t.tools.map((f: any) => `${t.name}__${f.name}`);
    return [String(t?.name ?? t?.type)];
  });
}

function _items(turn: Exclude<OpenAITurn, { type: "error" }>, seq: number, tools: unknown): any[] {
  const message = (text: string, n: number) => ({
    type: "message",
    role: "assistant",
    id: `msg_scripted_${seq}_${n}`,
    content: [{ type: "output_text", text, annotations: [] }],
  });
  if (turn.type === "text") return [message(turn.text, 0)];
  const items: any[] = turn.text ? [message(turn.text, 0)] : [];
  items.push({
    type: "function_call",
    id: `fc_scripted_${seq}`,
    call_id: `call_scripted_${seq}`,
    ..._callee(turn.name, tools),
    arguments: JSON.stringify(turn.arguments ?? {}),
  });
  return items;
}

function _sse(id: string, items: any[]): string {
  const frames = [sseFrame("response.created", { type: "response.created", response: { id } })];
  items.forEach((item, output_index) => {
    frames.push(sseFrame("response.output_item.added", { type: "response.output_item.added", output_index, item }));
    frames.push(sseFrame("response.output_item.done", { type: "response.output_item.done", output_index, item }));
  });
  const usage = {
    input_tokens: 100,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 20,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 120,
  };
  frames.push(sseFrame("response.completed", { type: "response.completed", response: { id, usage } }));
  return frames.join("");
}

/** `mcp__drover__item_next` → `{ namespace: "mcp__drover", name: "item_next" }` when a namespace offers it. */
function _callee(name: string, tools: unknown): { name: string; namespace?: string } {
  if (!Array.isArray(tools)) return { name };
  for (const t of tools as any[]) {
    if (!Array.isArray(t?.tools) || !name.startsWith(`${t.name}__`)) continue;
    const fn = name.slice(t.name.length + 2);
    if (t.tools.some((f: any) => f?.name === fn)) return { namespace: String(t.name), name: fn };
  }
  return { name };
}

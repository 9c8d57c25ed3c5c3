/**
 * @module MCP over Streamable HTTP at `/mcp`, stateless: each request gets its own server and transport, so
 * any number of clients can call at once. The tools are the ops, with their zod schemas as JSON Schema.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type ToolAnnotations,
} from "@modelcontextprotocol/sdk/types.js";
import type { Context as HonoContext } from "hono";
import { z } from "zod";
import { toDroverError } from "../core/errors.ts";
import type { OpDef } from "../core/feature.ts";
import { inputSchemaOf } from "../core/ops.ts";
import type { Runtime } from "../runtime.ts";

export function createMcpHandler(rt: Runtime, options: { version: string }) {
  const tools = rt.ops
    .list()
    .filter(({ op }) => !op.cliOnly)
    .map(({ name, op }) => ({
      name,
      description: op.description,
      inputSchema: z.toJSONSchema(inputSchemaOf(op), { io: "input", unrepresentable: "any" }) as { type: "object" },
      annotations: _annotationsOf(op),
    }));

  return async function mcp(c: HonoContext): Promise<Response> {
    const server = new Server({ name: "drover", version: options.version }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
    server.setRequestHandler(CallToolRequestSchema, async (req) => {
      try {
        const result = await rt.ops.run(req.params.name, req.params.arguments ?? {}, { via: "mcp" });
        return { content: [{ type: "text", text: JSON.stringify(result ?? null) }] };
      } catch (err) {
        const e = toDroverError(err);
        return { isError: true, content: [{ type: "text", text: JSON.stringify({ error: e.toJSON() }) }] };
      }
    });
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    const res = await transport.handleRequest(c.req.raw);
    return c.req.method === "GET" && res.body ? _openedStream(res) : res;
  };
}

// --- internal ---

/**
 * A tool's MCP annotations, from what its op declares (SPEC §9): clients that gate tools by them — Codex's `exec`
 * refuses a tool with none — call drover's without a person approving each. Every op acts on drover's own state,
 * never on an open world.
 */
function _annotationsOf(op: OpDef): ToolAnnotations {
  if (!op.writes) return { readOnlyHint: true, idempotentHint: true, openWorldHint: false };
  return {
    readOnlyHint: false,
    destructiveHint: op.destructive ?? false,
    idempotentHint: op.idempotent ?? false,
    openWorldHint: false,
  };
}

/**
 * A GET stream that says it is open at once: the SDK's first bytes are a keep-alive 15 s later, and until a
 * body's first chunk nothing — not even the headers — reaches the client.
 */
function _openedStream(res: Response): Response {
  const opened = new TextEncoder().encode(": open\n\n");
  const body = res.body!;
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(opened);
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          controller.enqueue(value);
        }
        controller.close();
      } catch (err) {
        controller.error(err);
      }
    },
    cancel: (reason) => body.cancel(reason),
  });
  return new Response(stream, { status: res.status, headers: res.headers });
}

/**
 * @module MCP over Streamable HTTP at `/mcp`, stateless: each request gets its own server and transport, so
 * any number of clients can call at once. The tools are the ops, with their zod schemas as JSON Schema.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Context as HonoContext } from "hono";
import { z } from "zod";
import { toDroverError } from "../core/errors.ts";
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
    return transport.handleRequest(c.req.raw);
  };
}

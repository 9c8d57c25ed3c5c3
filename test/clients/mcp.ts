/**
 * @module A minimal MCP server over Streamable HTTP on 127.0.0.1 for the client tests: a few scripted tools, every
 * call recorded. Stateless like drover's own `/mcp`, so both CLIs can connect, list and call without a session.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

export interface McpTool {
  name: string;
  description?: string;
  inputSchema?: Record<string, unknown>;
  /**
   * Codex exec refuses a call to a tool with no annotations (`approval policy is never`); `readOnlyHint: true` is
   * what lets it through, so it is the default here.
   */
  annotations?: Record<string, unknown>;
  /** The tool's answer; its text becomes the tool result the model sees. */
  run(args: Record<string, unknown>): string | Promise<string>;
}

export interface McpCall {
  at: number;
  name: string;
  args: Record<string, unknown>;
}

export interface McpTestServer {
  /** The endpoint to register, `http://127.0.0.1:PORT/mcp`. */
  url: string;
  calls: McpCall[];
  stop(): Promise<void>;
}

export function startMcpServer(tools: McpTool[], options: { name?: string } = {}): McpTestServer {
  const calls: McpCall[] = [];
  const listed = tools.map((t) => ({
    name: t.name,
    description: t.description ?? t.name,
    inputSchema: t.inputSchema ?? { type: "object", properties: {} },
    annotations: t.annotations ?? { readOnlyHint: true },
  }));
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // Claude Code holds a `GET /mcp` stream open; Bun's 10 s default cuts it mid-session (see the clients notes)
    idleTimeout: 0,
    async fetch(req) {
      if (new URL(req.url).pathname !== "/mcp") return new Response("not found", { status: 404 });
      const mcp = new Server(
        { name: options.name ?? "drover-test", version: "0.0.0" },
        { capabilities: { tools: {} } },
      );
      mcp.setRequestHandler(ListToolsRequestSchema, () => ({ tools: listed }));
      mcp.setRequestHandler(CallToolRequestSchema, async (r) => {
        const args = (r.params.arguments ?? {}) as Record<string, unknown>;
        calls.push({ at: Date.now(), name: r.params.name, args });
        const tool = tools.find((t) => t.name === r.params.name);
        if (!tool) return { isError: true, content: [{ type: "text", text: `No tool "${r.params.name}"` }] };
        return { content: [{ type: "text", text: await tool.run(args) }] };
      });
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      await mcp.connect(transport);
      return transport.handleRequest(req);
    },
  });
  return { url: `http://127.0.0.1:${server.port}/mcp`, calls, stop: () => server.stop(true) };
}

/**
 * Hostile input, generated: every op over HTTP gets wrong types, huge strings, deep JSON, unicode and control
 * characters, path-traversal ids. Every answer is a clear 4xx (or a success for input that happens to be
 * valid), never a 5xx; the daemon keeps serving; what was stored before is unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import fc from "fast-check";
import { fieldsOf } from "../core/fields.ts";
import { allFeatures } from "../runtime.ts";
import { api, BUN, CLI, cli, type DaemonProc, hostileRuns, startDaemonProcess, tempProject } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
let witness: { id: string; item: unknown };

beforeAll(async () => {
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nworktrees = false\n' });
  daemon = await startDaemonProcess([BUN, CLI], project.paths);
  const item = (await api(daemon.url, daemon.token, "/api/items", { title: "precious", labels: ["keep"] })).body;
  witness = { id: item.id, item };
});
afterAll(async () => {
  await daemon.stop();
  project.cleanup();
});

const nasty = fc.oneof(
  fc.constantFrom(
    "../x",
    "../../etc/passwd",
    "..\\..\\win",
    "a/b",
    "/abs",
    "%2e%2e%2f",
    "\u0000",
    "\u202e",
    "𝕏".repeat(50),
    "$event.item_id",
    "",
    " ",
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constant("x".repeat(70_000)),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(-1),
  fc.constant(Number.MAX_SAFE_INTEGER),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    nasty,
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 10 }), tie("v"), { maxKeys: 4 }),
  ),
})).v;

const opNames = allFeatures.flatMap((f) => Object.keys(f.ops ?? {})).filter((n) => n !== "item.start");

describe("hostile input", () => {
  test("every op: generated bodies get a 2xx or a clear 4xx, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...opNames),
        fc.oneof(
          fc.dictionary(
            fc.constantFrom(
              "id",
              "agent",
              "title",
              "to",
              "fence",
              "item",
              "until",
              "in",
              "op",
              "args",
              "on",
              "mode",
              "labels",
              "input_tokens",
            ),
            value,
            { maxKeys: 6 },
          ),
          value,
        ),
        async (op, body) => {
          const res = await fetch(`${daemon.url}/api/ops/${op}`, {
            method: "POST",
            headers: { authorization: `Bearer ${daemon.token}`, "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          const json = (await res.json()) as { error?: { code: string; message: string } };
          expect({ op, body, status: res.status < 500 }).toEqual({ op, body, status: true });
          if (res.status >= 400) expect(typeof json.error?.message).toBe("string");
        },
      ),
      { numRuns: 400 },
    );
  }, 120_000);

  test("every REST route: generated query strings, path segments and bodies get a 2xx or a clear 4xx, never a 5xx", async () => {
    const routes = allFeatures.flatMap((f) =>
      Object.entries(f.ops ?? {}).flatMap(([name, op]) =>
        op.http ? [{ name, ...op.http, fields: fieldsOf(op.input).map((field) => field.name) }] : [],
      ),
    );
    // an item the routes may change (the witness stays untouched)
    const target: string = (await api(daemon.url, daemon.token, "/api/items", { title: "target" })).body.id;
    const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: "binary", maxLength: 30 }));
    const segment = fc.oneof(
      text.map(encodeURIComponent),
      fc.constantFrom("..", ".", "%2e%2e", "%2F", "%", "%zz", "%E0%A4%A", "%00", "%ff", "__proto__", "constructor"),
      fc.constantFrom("x".repeat(5000), target, `${target}%00`, "%F0%9D%95%8F".repeat(50)),
    );
    const queryValue = fc.oneof(
      text,
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.array(fc.string({ maxLength: 8 }), { maxLength: 5 }).map((list) => list.join(",")),
      fc.integer().map(String),
      fc.constantFrom("", "true", "0", "-1", "1e309", "NaN", "[", "[1,2", '{"__proto__":{"polluted":1}}', "%zz", "%"),
      fc.constant("x".repeat(6000)),
    );
    const queryKey = (fields: string[]) =>
      fc.oneof(fc.constantFrom(...fields, "__proto__", "constructor", "idempotency_key", "limit"), text);
    const request = fc.constantFrom(...routes).chain((route) =>
      fc.record({
        route: fc.constant(route),
        params: fc.array(segment, { minLength: 3, maxLength: 3 }),
        query: fc.array(fc.tuple(queryKey(route.fields), queryValue), { maxLength: 5 }),
        encoded: fc.boolean(),
        body: fc.oneof(fc.dictionary(fc.constantFrom(...route.fields, "__proto__"), value, { maxKeys: 4 }), value),
      }),
    );
    await fc.assert(
      fc.asyncProperty(request, async ({ route, params, query, encoded, body }) => {
        let n = 0;
        const path = route.path.replace(/:[a-z_]+/g, () => params[n++]!);
        const pairs = query.map(([k, v]) =>
          encoded ? `${encodeURIComponent(k)}=${encodeURIComponent(v)}` : `${k}=${v}`,
        );
        const url = `${daemon.url}${path}${pairs.length ? `?${pairs.join("&")}` : ""}`;
        const res = await fetch(url, {
          method: route.method,
          headers: { authorization: `Bearer ${daemon.token}`, "content-type": "application/json" },
          body: route.method === "GET" ? undefined : JSON.stringify(body),
        });
        const sent = { op: route.name, url: url.slice(0, 300), status: res.status };
        expect({ ...sent, ok: res.status < 500 }).toEqual({ ...sent, ok: true });
        const answer = await res.text();
        // Bun's HTTP server refuses a request line past 16 KiB itself, before any route: a 431 with no body
        if (res.status === 431) return void expect(url.length).toBeGreaterThan(16 * 1024);
        if (res.status >= 400) {
          const message = (JSON.parse(answer) as { error?: { message?: unknown } }).error?.message;
          expect({ ...sent, message: typeof message === "string" && !message.includes("\n") }).toEqual({
            ...sent,
            message: true,
          });
        }
      }),
      { numRuns: hostileRuns(300) },
    );
  }, 120_000);

  test("every op over MCP: generated arguments get a result or a tool error, never a protocol failure", async () => {
    const client = new Client({ name: "hostile", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(daemon.url + "/mcp"), {
        requestInit: { headers: { authorization: `Bearer ${daemon.token}` } },
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...opNames),
        fc.dictionary(fc.constantFrom("id", "agent", "title", "to", "fence", "item", "until"), value, { maxKeys: 4 }),
        async (op, args) => {
          const result = (await client.callTool({ name: op, arguments: args as Record<string, unknown> })) as {
            isError?: boolean;
            content: Array<{ text: string }>;
          };
          if (result.isError) expect(JSON.parse(result.content[0]!.text).error.code).not.toBe("internal");
        },
      ),
      { numRuns: 150 },
    );
    await client.close();
  }, 120_000);

  test("every op from the CLI: generated flag values exit 0, 1 or 2 with one line, never 3", async () => {
    const flag = fc.oneof(
      fc.constantFrom("../x", "-1", "NaN", "[]", "{}", '{"a":', "\u202e", "x".repeat(5000), ""),
      fc.string({ maxLength: 20 }),
    );
    const samples = fc.sample(
      fc.tuple(
        fc.constantFrom(...opNames),
        fc.constantFrom("id", "agent", "title", "to", "fence", "until", "args"),
        flag,
      ),
      { numRuns: 24, seed: 42 },
    );
    for (const [op, name, val] of samples) {
      const r = await cli([...op.split("."), `--${name}`, val], project.dir);
      expect({ op, name, val, code: [0, 1, 2].includes(r.code) }).toEqual({ op, name, val, code: true });
      if (r.code) expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 120_000);

  test("bodies that are not JSON, deeply nested, or 10 MB are refused with 4xx", async () => {
    const post = (body: string | Uint8Array<ArrayBuffer>) =>
      fetch(`${daemon.url}/api/ops/item.create`, {
        method: "POST",
        headers: { authorization: `Bearer ${daemon.token}` },
        body,
      });
    expect((await post("{not json")).status).toBe(400);
    expect((await post("[".repeat(100_000) + "]".repeat(100_000))).status).toBe(400);
    expect((await post(`{"title":${"[".repeat(5000)}1${"]".repeat(5000)}}`)).status).toBe(400);
    expect((await post(new Uint8Array(10 * 1024 * 1024).fill(32))).status).toBe(413);
    expect((await post(JSON.stringify({ title: "\u0000\u0007\u001b[31mred" }))).status).toBe(200); // stored as given: JSON carries it safely
  });

  test("the daemon is still serving and what was stored is unchanged", async () => {
    expect((await fetch(daemon.url + "/health")).status).toBe(200);
    expect((await api(daemon.url, daemon.token, `/api/items/${witness.id}`)).body).toEqual(witness.item);
  });
});

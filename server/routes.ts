/**
 * @module The REST routes ops declare (`http: {method, path}`), mounted for every op that has one: a route is
 * the op called over HTTP, its input the query string (GET, coerced by the op's schema) or the JSON body, with
 * the path's parameters filling the fields of their names.
 */
import { Hono } from "hono";
import type { OpRunner } from "../core/feature.ts";
import { coerceFields, fieldsOf } from "../core/fields.ts";
import { readJsonObject } from "../web/body.ts";

export function opRoutes(ops: OpRunner): Hono {
  const app = new Hono();
  for (const { name, op } of ops.list()) {
    if (!op.http) continue;
    const { method, path, status = 200 } = op.http;
    const fields = fieldsOf(op.input);
    app.on(method, path, async function opRoute(c) {
      const given = method === "GET" ? coerceFields(fields, c.req.query()) : await readJsonObject(c.req.raw);
      return c.json(await ops.run(name, { ...given, ...c.req.param() }, { via: "http" }), status);
    });
  }
  return app;
}

/** @module Helpers for the REST routes features serve: every route is an op call made over HTTP. */
import { Hono } from "hono";
import type { Context } from "../core/feature.ts";
import { readJsonObject } from "./body.ts";

/** Runs an op as an HTTP request does. */
export function httpOp(ctx: Context): (name: string, input: unknown) => Promise<unknown> {
  return function runOverHttp(name, input) {
    return ctx.ops.run(name, input, { via: "http" });
  };
}

/** `GET path` (`?all=true` too), `POST path`, `DELETE path/:id` for a collection with list/add/cancel ops. */
export function collectionRoutes(ctx: Context, path: string, ops: { list: string; add: string; cancel: string }): Hono {
  const run = httpOp(ctx);
  return new Hono()
    .get(path, async (c) => c.json(await run(ops.list, { all: c.req.query("all") === "true" })))
    .post(path, async (c) => c.json(await run(ops.add, await readJsonObject(c.req.raw)), 201))
    .delete(`${path}/:id`, async (c) => c.json(await run(ops.cancel, { id: c.req.param("id") })));
}

/**
 * @module Feature `config`: what of the committed `.drover/config.toml` is in force on this machine — `config.status`
 * lists the values with effects that wait for `drover trust` (and what is used meanwhile). Approving is not an op:
 * a person does it at this machine's CLI (`drover trust`), never a token holder over HTTP or MCP.
 */
import { Hono } from "hono";
import { z } from "zod";
import { defineFeature, defineOp } from "../../core/feature.ts";
import { TRUST_COMMAND } from "../../core/trust.ts";
import { httpOp } from "../../server/routes.ts";

export default defineFeature({
  name: "config",
  ops: {
    "config.status": defineOp({
      writes: false,
      description: "Values of the committed config that wait for this machine's approval (drover trust), and what is used meanwhile",
      input: z.strictObject({}),
      run(ctx) {
        return { file: ctx.paths.config, untrusted: ctx.untrusted, command: ctx.untrusted.length ? TRUST_COMMAND : null };
      },
      view: { columns: ["key", "value", "using"] },
    }),
  },
  handler(ctx) {
    const run = httpOp(ctx);
    return new Hono().get("/api/config", async (c) => c.json(await run("config.status", {})));
  },
});

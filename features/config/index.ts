/**
 * @module Feature `config`: what of the committed `.drover/config.toml` is in force on this machine — `config.status`
 * lists the values with effects that wait for `drover trust` (and what is used meanwhile). Approving is not an op:
 * a person does it at this machine's CLI (`drover trust`), never a token holder over HTTP or MCP.
 */
import { z } from "zod";
import { defineFeature, defineOp } from "../../core/feature.ts";
import { TRUST_COMMAND } from "../../core/trust.ts";

const configOps = {
  "config.status": defineOp({
    writes: false,
    description:
      "Values of the committed config that wait for this machine's approval (drover trust), and what is used meanwhile",
    input: z.strictObject({}),
    http: { method: "GET", path: "/api/config" },
    run(ctx) {
      return { file: ctx.paths.config, untrusted: ctx.untrusted, command: ctx.untrusted.length ? TRUST_COMMAND : null };
    },
    view: { columns: ["key", "value", "using"] },
  }),
};

declare module "../../core/feature.ts" {
  interface OpMap {
    "config.status": (typeof configOps)["config.status"];
  }
}

export default defineFeature({
  name: "config",
  ops: configOps,
});

/** @module What the gateway relay adds to the runtime's name spaces: the `[gateway]` keys of a project. */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";

export const gatewayConfig = defineConfig(
  "gateway",
  { url: z.string().default(""), project: z.string().default(""), token: z.string().default("") },
  { env: { url: "DROVER_GATEWAY_URL", token: "DROVER_GATEWAY_TOKEN", project: "DROVER_GATEWAY_PROJECT" } },
);

declare module "../../core/config.ts" {
  interface ConfigParts {
    gateway: typeof gatewayConfig;
  }
}

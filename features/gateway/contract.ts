/** @module What the gateway relay adds to the runtime's name spaces: the `[gateway]` keys of a project. */
import { z } from "zod";
import { defineConfig } from "../../core/config.ts";
import { defineContract } from "../../core/contract.ts";

export const gatewayContract = defineContract({
  config: [
    defineConfig(
      "gateway",
      { url: z.string().default(""), project: z.string().default(""), token: z.string().default("") },
      { env: { url: "DROVER_GATEWAY_URL", token: "DROVER_GATEWAY_TOKEN", project: "DROVER_GATEWAY_PROJECT" } },
    ),
  ],
});

declare module "../../core/contract.ts" {
  interface Contracts {
    gateway: typeof gatewayContract;
  }
}

/**
 * @module Feature `gateway`: the relay that connects this daemon to a gateway (`gateway.url` or
 * `DROVER_GATEWAY_URL`), and `relay.status`. The gateway itself is `drover gateway` (./server.ts).
 */
import { basename } from "node:path";
import { z } from "zod";
import { defineFeature, defineOp } from "../../core/feature.ts";
import { startRelay, type Relay } from "./relay.ts";

declare module "../../core/feature.ts" {
  interface Services {
    relay?: Relay;
  }
}

export default defineFeature({
  name: "gateway",
  ops: {
    "relay.status": defineOp({
      writes: false,
      description: "Whether this daemon's relay to the gateway is connected",
      input: z.strictObject({}),
      run(ctx) {
        if (!ctx.config.gateway.url) return { configured: false, connected: false };
        if (!ctx.services.relay) return { configured: true, connected: false, detail: "the relay runs in the daemon" };
        return { configured: true, ...ctx.services.relay.status() };
      },
    }),
  },
  start(ctx) {
    const { url, token, project } = ctx.config.gateway;
    if (!url) return;
    ctx.services.relay = startRelay(ctx, {
      url,
      token,
      project: project || basename(ctx.paths.root),
      version: "0.1.0",
      async snapshot() {
        const items = (await ctx.ops.run("items.list", {}, { via: "internal" })) as Array<Record<string, unknown>>;
        const timers = (await ctx.ops.run("timer.list", {}, { via: "internal" })) as unknown[];
        const triggers = (await ctx.ops.run("trigger.list", {}, { via: "internal" })) as unknown[];
        return { agents: await ctx.ops.run("agents.list", {}, { via: "internal" }), items, timers: timers.length, triggers: triggers.length };
      },
    });
  },
  stop(ctx) {
    ctx.services.relay?.stop();
  },
});

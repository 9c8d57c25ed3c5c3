/**
 * @module Feature `gateway`: the relay that connects this daemon to a gateway (`gateway.url` or
 * `DROVER_GATEWAY_URL`), and `relay.status`. The gateway itself is `drover gateway` (./server.ts).
 */
import { basename } from "node:path";
import { z } from "zod";
import { type Context, defineFeature, defineOp } from "../../core/feature.ts";
import { VERSION } from "../../core/version.ts";
import { gatewayContract } from "./contract.ts";
import { type Relay, startRelay } from "./relay.ts";

declare module "../../core/feature.ts" {
  interface Services {
    relay?: Relay;
  }
}

const gatewayOps = {
  "relay.status": defineOp({
    writes: false,
    inDaemon: true,
    description:
      "This daemon's relay to the gateway: connected, paused (the gateway reads too slowly), queued, buffered bytes, dropped events, the last snapshot",
    input: z.strictObject({}),
    run(ctx) {
      if (!ctx.config.gateway.url) return { configured: false, connected: false };
      if (!ctx.services.relay) return { configured: true, connected: false, detail: "the relay runs in the daemon" };
      return { configured: true, ...ctx.services.relay.status() };
    },
  }),
};

declare module "../../core/feature.ts" {
  interface OpMap {
    "relay.status": (typeof gatewayOps)["relay.status"];
  }
}

export default defineFeature({
  name: "gateway",
  ...gatewayContract,
  // where the relay sends this project's events (and a token from this machine's environment)
  trust: { "gateway.url": (v) => v !== "" },
  ops: gatewayOps,
  start: _startRelay,
  on: {
    // an approval (`drover trust`) or its withdrawal may change the URL in force: the relay follows
    config_retrusted(ctx) {
      if (ctx.mode !== "daemon" || (ctx.services.relay?.status().url ?? "") === ctx.config.gateway.url) return;
      ctx.services.relay?.stop();
      ctx.services.relay = undefined;
      _startRelay(ctx);
    },
  },
  stop(ctx) {
    ctx.services.relay?.stop();
  },
});

// --- internal ---

function _startRelay(ctx: Context) {
  const { url, token, project } = ctx.config.gateway;
  if (!url) return;
  ctx.services.relay = startRelay(ctx, {
    url,
    token,
    project: project || basename(ctx.paths.root),
    version: VERSION,
    async snapshot() {
      const agents = await ctx.ops.call("agents.list", {});
      const items = await ctx.ops.call("items.list", {});
      const timers = await ctx.ops.call("timer.list", {});
      const triggers = await ctx.ops.call("trigger.list", {});
      return { agents, items, timers: timers.length, triggers: triggers.length };
    },
  });
}

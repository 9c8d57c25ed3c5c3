/**
 * @module The daemon's Hono app: `/health` open, everything else behind the bearer token; every op at
 * `POST /api/ops/<name>` and at the REST route it declares; MCP at `/mcp`. Errors are rendered in one place. Every
 * request, `/health` included, must name this server in its `Host` (DNS rebinding, SPEC §12).
 */
import { Hono, type Context as HonoContext } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { DroverError, toDroverError } from "../core/errors.ts";
import { keyField } from "../core/idempotency.ts";
import { withRequestKey } from "../core/ops.ts";
import type { Runtime } from "../runtime.ts";
import { readJsonObject } from "../web/body.ts";
import { dashboardHtml } from "../web/dashboard.ts";
import { checkToken, hostGuard } from "../web/guard.ts";
import { createMcpHandler } from "./mcp.ts";
import { opRoutes } from "./routes.ts";

export const MAX_BODY_BYTES = 1024 * 1024;

export interface AppOptions {
  token: string;
  version: string;
  startedAt: number;
  /** The address the server is bound to (default `server.host`): a Host naming it is answered. */
  host?: string;
}

export function createApp(rt: Runtime, options: AppOptions): Hono {
  const app = new Hono();
  const { host, allowed_hosts } = rt.ctx.config.server;
  const checkHost = hostGuard(options.host ?? host, { extra: allowed_hosts, setting: "server.allowed_hosts" });
  app.onError((err, c) => renderError(c, err, rt));
  app.notFound((c) =>
    renderError(c, new DroverError("not_found", `Cannot find route "${c.req.method} ${c.req.path}"`), rt),
  );
  app.use("*", async function requireOwnHost(c, next) {
    const refused = checkHost(c.req.raw);
    if (refused) throw refused;
    await next();
  });

  app.get("/health", (c) =>
    c.json({
      ok: true,
      version: options.version,
      machine_id: rt.ctx.machineId,
      uptime_secs: Math.floor((Date.now() - options.startedAt) / 1000),
    }),
  );
  app.get("/", (c) => c.html(dashboardHtml));
  app.use("*", async function requireToken(c, next) {
    if (!checkToken(c.req.raw, options.token)) throw new DroverError("unauthorized", "Missing or wrong bearer token");
    await next();
  });
  app.use("*", async function idempotencyKey(c, next) {
    // a mutating op called with an Idempotency-Key answers a retry with the first outcome (core/idempotency.ts)
    const key = c.req.header("idempotency-key");
    if (key !== undefined && !keyField.safeParse(key).success)
      throw new DroverError("invalid_input", 'Invalid "Idempotency-Key": it must be 1 to 200 visible ASCII characters');
    await withRequestKey(key, next);
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new DroverError("too_large", `Body too large: the limit is ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );

  app.get("/api/ops", (c) =>
    c.json(rt.ops.list().map(({ name, feature, op }) => ({ name, feature, description: op.description }))),
  );
  app.post("/api/ops/:name", async (c) =>
    c.json(await rt.ops.run(c.req.param("name"), await readJsonObject(c.req.raw), { via: "http" })),
  );
  app.post("/api/reconcile", async (c) => c.json(await rt.reconcile()));
  app.post("/api/relay", (c) => c.json({ delivered: rt.drainRelay() }));
  app.all("/mcp", createMcpHandler(rt, { version: options.version }));
  app.route("/", opRoutes(rt.ops));
  for (const f of rt.features) if (f.handler) app.route("/", f.handler(rt.ctx));
  return app;
}

/** The one place an error becomes a response: `{error: {code, message, details?}}`, never a stack trace. */
export function renderError(c: HonoContext, err: unknown, rt: Runtime): Response {
  let e: DroverError;
  if (err instanceof HTTPException) {
    e = new DroverError(
      err.status === 401 ? "unauthorized" : err.status === 413 ? "too_large" : "invalid_input",
      err.message || "Bad request",
    );
  } else e = toDroverError(err);
  if (e.status >= 500)
    rt.ctx.log.error(`Request "${c.req.method} ${c.req.path}" failed`, { error: (e.cause as Error) ?? e });
  return c.json({ error: e.toJSON() }, e.status as ContentfulStatusCode);
}

/**
 * @module The checks every drover HTTP server makes before it answers — the daemon's and the gateway's: the
 * bearer token, and the `Host` a request names (DNS rebinding, SPEC §12) — and the plain error response for the
 * paths answered before any Hono app (WebSocket upgrades).
 */
import { timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { DroverError } from "../core/errors.ts";

/** True when the request carries the token as a bearer header (or, for browsers opening `/ws`, `?token=`). */
export function checkToken(req: Request, token: string, options: { allowQuery?: boolean } = {}): boolean {
  const header = req.headers.get("authorization") ?? "";
  let given = header.startsWith("Bearer ") ? header.slice(7).trim() : "";
  if (!given && options.allowQuery) given = new URL(req.url).searchParams.get("token") ?? "";
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The `Host` check (SPEC §12): answers null for a request naming this server, else the 403 to throw. Names
 * answered, with any port: the bound address, `localhost`, `127.0.0.1`, `[::1]` and `extra`. Bound to every
 * interface (`0.0.0.0`, `::`), any IP literal is answered too: a rebound DNS name is never an IP literal.
 */
export function hostGuard(
  bound: string,
  options: { extra: readonly string[]; setting: string },
): (req: Request) => DroverError | null {
  const names = new Set(["localhost", "127.0.0.1", "[::1]", _hostName(bound), ...options.extra.map(_hostName)]);
  const anyAddress = _hostName(bound) === "0.0.0.0" || _hostName(bound) === "[::]";
  return function checkHost(req) {
    const given = req.headers.get("host") ?? new URL(req.url).host;
    const name = _hostOf(given);
    if (name && (names.has(name) || (anyAddress && isIP(name.replace(/^\[(.*)\]$/, "$1")) !== 0))) return null;
    return new DroverError(
      "forbidden",
      `Cannot answer Host ${JSON.stringify(given.slice(0, 100))}: it is not this server's address, localhost or a name in ${options.setting}`,
    );
  };
}

/** An error as a plain response, for the paths answered before the Hono app (WebSocket upgrades). */
export function errorResponse(err: DroverError): Response {
  return Response.json({ error: err.toJSON() }, { status: err.status });
}

// --- internal ---

/** The host name of a `Host` header, lower-case, without the port; null when it is not a host name. */
function _hostOf(header: string): string | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/.exec(header.trim().toLowerCase());
  return m ? m[1]! : null;
}

/** A configured name as `_hostOf` gives it: lower-case, an IPv6 address in brackets. */
function _hostName(name: string): string {
  const n = name.trim().toLowerCase();
  return isIP(n) === 6 ? `[${n}]` : n;
}

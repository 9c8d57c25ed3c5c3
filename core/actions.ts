/**
 * @module The one action dispatcher that timers and triggers share. An action is an op call, a webhook, or a
 * prompt, which the feature that takes prompts turns into an op (the pipeline: an item for the next free agent);
 * it is validated when the timer or trigger is made, not when it fires.
 * `"$event.<field>"` strings in a trigger's args or webhook body are replaced by the event's field.
 * Webhooks are input from whoever holds a token: their headers are checked when made, their redirects are
 * followed by hand (never to another origin with custom headers), and at most 64 KiB of an answer is read.
 */
import { z } from "zod";
import { DroverError } from "./errors.ts";
import type { EventCause } from "./events.ts";
import type { Context, OpRunner } from "./feature.ts";
import { randomBase32 } from "./identity.ts";

/** How many bytes of a webhook's answer are read before the rest is cancelled. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Redirects one webhook try follows before it gives up. */
export const MAX_REDIRECTS = 3;
const MAX_HEADERS = 32;
const MAX_HEADER_BYTES = 8192;
/** An HTTP token (RFC 9110 §5.6.2). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
/** Printable ASCII and tab: no CR, LF, NUL or other control character, nothing fetch would refuse later. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
/** Headers that frame the request or pick its host: fetch sets them, a hook may not. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "proxy-connection",
]);

const headersSchema = z
  .record(z.string(), z.string())
  .default({})
  .superRefine((headers, check) => {
    const names = Object.keys(headers);
    if (names.length > MAX_HEADERS)
      check.addIssue({ code: "custom", message: `has ${names.length} headers: at most ${MAX_HEADERS} are allowed` });
    const bytes = names.reduce((n, k) => n + k.length + headers[k]!.length, 0);
    if (bytes > MAX_HEADER_BYTES)
      check.addIssue({
        code: "custom",
        message: `has ${bytes} bytes of headers: at most ${MAX_HEADER_BYTES} are allowed`,
      });
    const seen = new Set<string>();
    for (const name of names) {
      const lower = name.toLowerCase();
      const problem = !HEADER_NAME.test(name)
        ? "is not a header name (letters, digits and !#$%&'*+-.^_`|~, at most 128)"
        : RESERVED_HEADERS.has(lower)
          ? "is set by drover itself, not by a hook"
          : seen.has(lower)
            ? "is given twice"
            : !HEADER_VALUE.test(headers[name]!)
              ? "has a value with CR, LF, NUL or another control character (printable ASCII only)"
              : null;
      seen.add(lower);
      if (problem)
        check.addIssue({ code: "custom", message: `header ${JSON.stringify(name)} ${problem}`, path: [name] });
    }
  });

const webhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]).default("POST"),
  headers: headersSchema,
  body: z.unknown().optional(),
});

export const actionSchema = z.union([
  z.strictObject({ op: z.string().min(1).max(64), args: z.record(z.string(), z.unknown()).default({}) }),
  z.strictObject({ webhook: webhookSchema }),
  z.strictObject({ prompt: z.string().trim().min(1).max(65_536) }),
]);

export type Action = z.output<typeof actionSchema>;
type Webhook = z.output<typeof webhookSchema>;

declare module "./feature.ts" {
  interface Services {
    actions: Dispatcher;
  }
}

/** The flat fields a timer or trigger input may use instead of `action` (readable CLI flags). */
export const actionFields = {
  action: actionSchema.optional().describe("The action as JSON: {op, args} | {webhook: {url, …}} | {prompt}"),
  op: z.string().min(1).max(64).optional().describe("Action: run this op"),
  args: z.record(z.string(), z.unknown()).optional().describe("Action: the op's input as JSON"),
  webhook: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .optional()
    .describe("Action: POST the context here"),
  prompt: z.string().trim().min(1).max(65_536).optional().describe("Action: an item for the next free agent"),
};

/** The one action the input names, checked against the op registry; placeholders are allowed when asked. */
export function actionFrom(
  input: { action?: Action; op?: string; args?: Record<string, unknown>; webhook?: string; prompt?: string },
  ops: OpRunner,
  options: { placeholders?: boolean } = {},
): Action {
  const given = [input.action, input.op, input.webhook, input.prompt].filter((v) => v !== undefined).length;
  if (given !== 1)
    throw new DroverError("invalid_input", 'Invalid action: give exactly one of "action", "op", "webhook" or "prompt"');
  if (input.args !== undefined && input.op === undefined)
    throw new DroverError("invalid_input", 'Invalid action: "args" goes with "op"');
  const action: Action =
    input.action ??
    (input.op !== undefined
      ? { op: input.op, args: input.args ?? {} }
      : input.webhook !== undefined
        ? { webhook: webhookSchema.parse({ url: input.webhook }) }
        : { prompt: input.prompt! });
  if ("op" in action) _checkOp(action, ops, options.placeholders ?? false);
  return action;
}

export interface ActionResult {
  result: "ok" | "error";
  error?: string;
  output?: unknown;
}

export interface DispatchOptions {
  timeoutMs: number;
  /** Waits between webhook tries; its length + 1 is the number of tries. */
  backoffMs: number[];
}

/** The op a prompt action runs. */
export type PromptHandler = (prompt: string) => { op: string; args: Record<string, unknown> };

export interface Dispatcher {
  run(
    action: Action,
    context: { event?: Record<string, unknown>; timer?: Record<string, unknown> },
    cause: EventCause,
  ): Promise<ActionResult>;
  /**
   * Holds `settle` until `work` ends too: what a caller does with an action's result (a timer records the firing,
   * a trigger says it fired) ends after the action, and a caller may run several in turn.
   */
  track(work: Promise<unknown>): void;
  /** Resolves once every action, and all work tracked, has ended: what started meanwhile too. */
  settle(): Promise<void>;
  options: DispatchOptions;
  /** Set by the feature that takes prompts; without one, a prompt action fails with a clear error. */
  prompts?: PromptHandler;
}

export function createDispatcher(
  ctx: Context,
  options: DispatchOptions = { timeoutMs: 10_000, backoffMs: [1000, 2000] },
): Dispatcher {
  const running = new Set<Promise<void>>();
  const dispatcher: Dispatcher = {
    options,
    run(action, context, cause) {
      const result = _run(ctx, dispatcher, action, context, cause);
      dispatcher.track(result);
      return result;
    },
    track(work) {
      // settled either way: a failure is its caller's to report, settle only waits
      const tracked: Promise<void> = work.then(_nothing, _nothing).then(() => void running.delete(tracked));
      running.add(tracked);
    },
    async settle() {
      while (running.size) await Promise.all(running);
    },
  };
  return dispatcher;
}

/** Replaces every string `"$event.<field>"` (anywhere in the value) with that field of the event. */
export function substitute(value: unknown, event: Record<string, unknown>): unknown {
  if (typeof value === "string" && value.startsWith("$event.")) {
    const field = value.slice(7);
    return Object.hasOwn(event, field) ? (event[field] ?? null) : null; // "$event.constructor" is no field of an event
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, event));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, event)]));
  return value;
}

/**
 * A new chain id, "ch" and 10 base32 characters: a trigger's first firing on an event that has none, or a timer
 * firing, starts a chain; every event its actions cause carries the id in `cause.chain`.
 */
export function newChainId(): string {
  return `ch${randomBase32(10)}`;
}

/** Whether a cause's chain is one of ours (a cause from the hub is data another machine wrote). */
export function isChainId(value: unknown): value is string {
  return typeof value === "string" && /^ch[a-z2-7]{10}$/.test(value);
}

// --- internal ---

function _nothing(): void {}

async function _run(
  ctx: Context,
  dispatcher: Dispatcher,
  action: Action,
  context: { event?: Record<string, unknown>; timer?: Record<string, unknown> },
  cause: EventCause,
): Promise<ActionResult> {
  const event = context.event ?? {};
  try {
    if ("op" in action) {
      const output = await ctx.ops.run(action.op, substitute(action.args, event), { via: "action", cause });
      return { result: "ok", output };
    }
    if ("prompt" in action) {
      if (!dispatcher.prompts)
        throw new DroverError("not_found", "Cannot run a prompt action: no feature takes prompts");
      const { op, args } = dispatcher.prompts(action.prompt);
      return { result: "ok", output: await ctx.ops.run(op, args, { via: "action", cause }) };
    }
    return await _webhook(action.webhook, substitute(action.webhook.body ?? context, event), dispatcher.options);
  } catch (err) {
    return { result: "error", error: err instanceof Error ? err.message : String(err) };
  }
}

function _checkOp(action: { op: string; args: Record<string, unknown> }, ops: OpRunner, placeholders: boolean) {
  const op = ops.get(action.op);
  if (!op) throw new DroverError("invalid_input", `Invalid action: no op named "${action.op}"`);
  if (op.cliOnly)
    throw new DroverError(
      "invalid_input",
      `Invalid action: op "${action.op}" is a person's choice, run only from the CLI`,
    );
  const result = op.input.safeParse(action.args);
  if (result.success) return;
  const issues = result.error.issues.filter((i) => !(placeholders && _isPlaceholder(action.args, i.path)));
  if (!issues.length) return;
  const first = issues[0]!;
  throw new DroverError(
    "invalid_input",
    `Invalid action: op "${action.op}": "${first.path.join(".") || "args"}": ${first.message}`,
    {
      details: issues.map((i) => ({ path: ["args", ...i.path.map(String)], code: i.code, message: i.message })),
    },
  );
}

function _isPlaceholder(args: unknown, path: PropertyKey[]): boolean {
  let v: unknown = args;
  for (const p of path)
    v = v && typeof v === "object" && Object.hasOwn(v, p) ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return typeof v === "string" && v.startsWith("$event.");
}

async function _webhook(hook: Webhook, body: unknown, options: DispatchOptions): Promise<ActionResult> {
  const target = `${hook.method} ${hook.url}`;
  let last = "";
  for (let attempt = 0; attempt <= options.backoffMs.length; attempt++) {
    if (attempt) await Bun.sleep(options.backoffMs[attempt - 1]!);
    try {
      const status = await _send(hook, body, AbortSignal.timeout(options.timeoutMs));
      if (status >= 200 && status < 300) return { result: "ok", output: { status, tries: attempt + 1 } };
      last = `HTTP ${status}`;
    } catch (err) {
      // a refused redirect answers the same on every try
      if (err instanceof DroverError) return { result: "error", error: `Webhook "${target}" ${err.message}` };
      last =
        (err as Error).name === "TimeoutError" ? `timed out after ${options.timeoutMs} ms` : (err as Error).message;
    }
  }
  return { result: "error", error: `Webhook "${target}" failed after ${options.backoffMs.length + 1} tries: ${last}` };
}

/** One try: redirects followed by hand, each answer's body read up to the bound; the final status. */
async function _send(hook: Webhook, body: unknown, signal: AbortSignal): Promise<number> {
  const headers = new Headers(hook.headers);
  if (!headers.has("content-type")) headers.set("content-type", "application/json");
  const custom = Object.keys(hook.headers).length > 0;
  let url = new URL(hook.url);
  let method = hook.method;
  let payload = method === "GET" ? undefined : JSON.stringify(body);
  for (let hop = 0; ; hop++) {
    const res = await fetch(url, { method, headers, body: payload, redirect: "manual", signal });
    await _readBounded(res);
    const location = res.status >= 300 && res.status < 400 ? res.headers.get("location") : null;
    if (location === null) return res.status;
    if (hop === MAX_REDIRECTS)
      throw new DroverError("invalid_input", `was redirected more than ${MAX_REDIRECTS} times`);
    const next = URL.parse(location, url);
    if (!next || !/^https?:$/.test(next.protocol)) {
      throw new DroverError("forbidden", `was redirected to "${location.slice(0, 200)}", not an http(s) URL`);
    }
    if (custom && next.origin !== url.origin) {
      throw new DroverError(
        "forbidden",
        `was redirected to another origin "${next.origin}": not followed, as the hook sends custom headers`,
      );
    }
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST"))
      [method, payload] = ["GET", undefined];
    url = next;
  }
}

/** Reads at most MAX_RESPONSE_BYTES of the answer and cancels the rest (an unread body keeps arriving into memory). */
async function _readBounded(res: Response): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  try {
    for (let bytes = 0; bytes < MAX_RESPONSE_BYTES; ) {
      const chunk = await reader.read();
      if (chunk.done) return;
      bytes += chunk.value.byteLength;
    }
  } catch {
    return; // a body cut short or timed out: the status already said how it went
  }
  await reader.cancel().catch(() => undefined);
}

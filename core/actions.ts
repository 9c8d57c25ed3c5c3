/**
 * @module The one action dispatcher that timers and triggers share. An action is an op call, a webhook, or a
 * prompt that becomes an item; it is validated when the timer or trigger is made, not when it fires.
 * `"$event.<field>"` strings in a trigger's args or webhook body are replaced by the event's field.
 */
import { z } from "zod";
import { DroverError } from "./errors.ts";
import type { EventCause } from "./events.ts";
import type { Context, OpRunner } from "./feature.ts";

const webhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]).default("POST"),
  headers: z.record(z.string(), z.string().max(4096)).default({}),
  body: z.unknown().optional(),
});

export const actionSchema = z.union([
  z.strictObject({ op: z.string().min(1).max(64), args: z.record(z.string(), z.unknown()).default({}) }),
  z.strictObject({ webhook: webhookSchema }),
  z.strictObject({ prompt: z.string().trim().min(1).max(65_536) }),
]);

export type Action = z.output<typeof actionSchema>;

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
  webhook: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional().describe("Action: POST the context here"),
  prompt: z.string().trim().min(1).max(65_536).optional().describe("Action: an item for the next free agent"),
};

/** The one action the input names, checked against the op registry; placeholders are allowed when asked. */
export function actionFrom(
  input: { action?: Action; op?: string; args?: Record<string, unknown>; webhook?: string; prompt?: string },
  ops: OpRunner,
  options: { placeholders?: boolean } = {},
): Action {
  const given = [input.action, input.op, input.webhook, input.prompt].filter((v) => v !== undefined).length;
  if (given !== 1) throw new DroverError("invalid_input", 'Invalid action: give exactly one of "action", "op", "webhook" or "prompt"');
  if (input.args !== undefined && input.op === undefined) throw new DroverError("invalid_input", 'Invalid action: "args" goes with "op"');
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

export interface Dispatcher {
  run(action: Action, context: { event?: Record<string, unknown>; timer?: Record<string, unknown> }, cause: EventCause): Promise<ActionResult>;
  options: DispatchOptions;
}

export function createDispatcher(ctx: Context, options: DispatchOptions = { timeoutMs: 10_000, backoffMs: [1000, 2000] }): Dispatcher {
  const dispatcher: Dispatcher = {
    options,
    async run(action, context, cause) {
      const event = context.event ?? {};
      try {
        if ("op" in action) {
          const output = await ctx.ops.run(action.op, substitute(action.args, event), { via: "action", cause });
          return { result: "ok", output };
        }
        if ("prompt" in action) {
          const title = action.prompt.split("\n")[0]!.slice(0, 200);
          const output = await ctx.ops.run("item.create", { title, body: action.prompt, labels: ["prompt"] }, { via: "action", cause });
          return { result: "ok", output };
        }
        return await _webhook(action.webhook, substitute(action.webhook.body ?? context, event), dispatcher.options);
      } catch (err) {
        return { result: "error", error: err instanceof Error ? err.message : String(err) };
      }
    },
  };
  return dispatcher;
}

/** Replaces every string `"$event.<field>"` (anywhere in the value) with that field of the event. */
export function substitute(value: unknown, event: Record<string, unknown>): unknown {
  if (typeof value === "string" && value.startsWith("$event.")) return event[value.slice(7)] ?? null;
  if (Array.isArray(value)) return value.map((v) => substitute(v, event));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, event)]));
  return value;
}

// --- internal ---

function _checkOp(action: { op: string; args: Record<string, unknown> }, ops: OpRunner, placeholders: boolean) {
  const op = ops.get(action.op);
  if (!op) throw new DroverError("invalid_input", `Invalid action: no op named "${action.op}"`);
  const result = op.input.safeParse(action.args);
  if (result.success) return;
  const issues = result.error.issues.filter((i) => !(placeholders && _isPlaceholder(action.args, i.path)));
  if (!issues.length) return;
  const first = issues[0]!;
  throw new DroverError("invalid_input", `Invalid action: op "${action.op}": "${first.path.join(".") || "args"}": ${first.message}`, {
    details: issues.map((i) => ({ path: ["args", ...i.path.map(String)], code: i.code, message: i.message })),
  });
}

function _isPlaceholder(args: unknown, path: PropertyKey[]): boolean {
  let v: unknown = args;
  for (const p of path) v = v && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return typeof v === "string" && v.startsWith("$event.");
}

async function _webhook(hook: z.output<typeof webhookSchema>, body: unknown, options: DispatchOptions): Promise<ActionResult> {
  const target = `${hook.method} ${hook.url}`;
  let last = "";
  for (let attempt = 0; attempt <= options.backoffMs.length; attempt++) {
    if (attempt) await Bun.sleep(options.backoffMs[attempt - 1]!);
    try {
      const res = await fetch(hook.url, {
        method: hook.method,
        headers: { "content-type": "application/json", ...hook.headers },
        body: hook.method === "GET" ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      if (res.ok) return { result: "ok", output: { status: res.status, tries: attempt + 1 } };
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).name === "TimeoutError" ? `timed out after ${options.timeoutMs} ms` : (err as Error).message;
    }
  }
  return { result: "error", error: `Webhook "${target}" failed after ${options.backoffMs.length + 1} tries: ${last}` };
}

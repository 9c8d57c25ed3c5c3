/**
 * @module The op registry: every feature's ops under one name space, each validated against its zod
 * schema before it runs. HTTP, MCP, CLI and actions all come through `run`. A mutating op takes an idempotency
 * key (core/idempotency.ts): a retry with it answers the first outcome instead of running again.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { z } from "zod";
import { DroverError, toDroverError } from "./errors.ts";
import { escapeControls } from "./escape.ts";
import type { ActiveCall, Context, Feature, OpCall, OpDef, OpRunner } from "./feature.ts";
import { createKeyStore, type KeyStore, keyField } from "./idempotency.ts";

/** The input an op's callers give: its schema, plus `idempotency_key` for a mutating op (made once per op). */
export function inputSchemaOf(op: OpDef): z.ZodType {
  let schema = _inputSchemas.get(op);
  if (!schema)
    _inputSchemas.set(
      op,
      (schema =
        op.writes && op.input instanceof z.ZodObject ? op.input.extend({ idempotency_key: keyField }) : op.input),
    );
  return schema;
}

export function createOpRegistry(features: readonly Feature[], getContext: () => Context): OpRunner {
  const ops = new Map<string, { feature: string; op: OpDef }>();
  for (const feature of features) {
    for (const [name, op] of Object.entries(feature.ops ?? {})) {
      if (ops.has(name)) throw new Error(`Op "${name}" is defined twice`);
      ops.set(name, { feature: feature.name, op });
    }
  }
  let keys: KeyStore | undefined;
  /** Keyed calls running in this process: a second one with the same key waits for the first. */
  const running = new Map<string, Promise<unknown>>();

  async function keyed(
    key: string,
    request: { op: string; input: unknown },
    run: () => Promise<unknown>,
  ): Promise<unknown> {
    const ctx = getContext();
    keys ??= createKeyStore(ctx.db);
    const earlier = running.get(key);
    if (earlier) return earlier.catch(() => undefined).then(() => keyed(key, request, run));
    const known = keys.recall(key, request);
    if (known) {
      if ("error" in known) throw known.error;
      return known.result;
    }
    const attempt = run().then(
      (result) => {
        _remember(ctx, keys!, key, request, { result });
        return result;
      },
      (err) => {
        _remember(ctx, keys!, key, request, { error: toDroverError(err) });
        throw err;
      },
    );
    running.set(key, attempt);
    try {
      return await attempt;
    } finally {
      running.delete(key);
    }
  }

  const registry: OpRunner = {
    list: () => [...ops].map(([name, v]) => ({ name, ...v })).sort((a, b) => a.name.localeCompare(b.name)),
    get: (name) => ops.get(name)?.op,
    call: (name, input, call) => registry.run(name, input, call) as never,
    async run(name, input, call: OpCall = { via: "internal" }) {
      const entry = ops.get(name);
      if (!entry) throw new DroverError("unknown_op", `Cannot run op "${name}": no such op`);
      if (entry.op.cliOnly && call.via !== "cli") {
        throw new DroverError(
          "forbidden",
          `Cannot run op "${name}" over ${call.via}: it is a person's choice, made with "drover ${name.replace(".", " ")}"`,
        );
      }
      const { idempotency_key: given, ...parsed } = parseInput(inputSchemaOf(entry.op), input ?? {}) as Record<
        string,
        unknown
      >;
      const outer = _calls.getStore();
      const key = entry.op.writes
        ? (call.idempotencyKey ??
          (given as string | undefined) ??
          (call.via === "http" ? _requestKeys.getStore() : undefined) ??
          _derived(outer, name))
        : undefined;
      const active: _ActiveCall = { ...call, op: name, idempotencyKey: key, nested: 0, hubOps: 0 };
      const run = () => _calls.run(active, async () => entry.op.run(getContext(), parsed, active));
      return key ? keyed(key, { op: name, input: parsed }, run) : run();
    },
  };
  return registry;
}

/** The call being served, wherever the op's work goes (the hub records its cause with the op). */
export function currentCall(): OpCall | undefined {
  return _calls.getStore();
}

/** The key of the next hub op the current call makes (`<call key>#<n>`), or none when the call has no key. */
export function nextHubOpKey(): string | undefined {
  const call = _calls.getStore();
  return call?.idempotencyKey ? `${call.idempotencyKey}#${++call.hubOps}` : undefined;
}

/** Runs `fn` (an HTTP request's handling) with the request's `Idempotency-Key` header for the op it calls. */
export function withRequestKey<R>(key: string | undefined, fn: () => R): R {
  return key === undefined ? fn() : _requestKeys.run(key, fn);
}

/** Validates input against a schema, throwing `invalid_input` with one readable line and the zod issues. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.map(String), code: i.code, message: i.message }));
  const first = issues[0]!;
  const where = first.path.length ? `"${first.path.join(".")}"` : "input";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  // one line whatever the input: zod quotes unknown keys as they are, a newline included
  throw new DroverError("invalid_input", escapeControls(`Invalid ${where}: ${first.message}${more}`), {
    details: issues,
  });
}

// --- internal ---

interface _ActiveCall extends ActiveCall {
  /** Ops this call has run so far (their keys derive from its key, in order). */
  nested: number;
  /** Hub ops this call has made so far. */
  hubOps: number;
}

const _calls = new AsyncLocalStorage<_ActiveCall>();
/** A schema built per call is compiled again per call by zod: ten times the cost of the op's own validation. */
const _inputSchemas = new WeakMap<OpDef, z.ZodType>();
const _requestKeys = new AsyncLocalStorage<string>();

/** An op run by a keyed op gets a key of its own, the same on every retry of the outer one. */
function _derived(outer: _ActiveCall | undefined, name: string): string | undefined {
  return outer?.idempotencyKey ? `${outer.idempotencyKey}/${name}#${++outer.nested}` : undefined;
}

function _remember(
  ctx: Context,
  keys: KeyStore,
  key: string,
  request: { op: string; input: unknown },
  outcome: Parameters<KeyStore["remember"]>[2],
) {
  try {
    keys.remember(key, request, outcome, ctx.clock.now());
  } catch (err) {
    // the op's outcome stands; its retry is answered by the hub's own record, or runs again
    ctx.log.warn(`Cannot remember idempotency key "${key}"`, { error: err as Error });
  }
}

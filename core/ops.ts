/**
 * @module The op registry: every feature's ops under one name space, each validated against its zod
 * schema before it runs. HTTP, MCP, CLI and actions all come through `run`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { z } from "zod";
import { DroverError } from "./errors.ts";
import type { Context, Feature, OpCall, OpDef, OpRunner } from "./feature.ts";

export interface OpRegistry extends OpRunner {
  list(): Array<{ name: string; feature: string; op: OpDef }>;
}

export function createOpRegistry(features: readonly Feature[], getContext: () => Context): OpRegistry {
  const ops = new Map<string, { feature: string; op: OpDef }>();
  for (const feature of features) {
    for (const [name, op] of Object.entries(feature.ops ?? {})) {
      if (ops.has(name)) throw new Error(`Op "${name}" is defined twice`);
      ops.set(name, { feature: feature.name, op });
    }
  }
  return {
    list: () => [...ops].map(([name, v]) => ({ name, ...v })).sort((a, b) => a.name.localeCompare(b.name)),
    get: (name) => ops.get(name)?.op,
    async run(name, input, call: OpCall = { via: "internal" }) {
      const entry = ops.get(name);
      if (!entry) throw new DroverError("unknown_op", `Cannot run op "${name}": no such op`);
      if (entry.op.cliOnly && call.via !== "cli") {
        throw new DroverError("forbidden", `Cannot run op "${name}" over ${call.via}: it is a person's choice, made with "drover ${name.replace(".", " ")}"`);
      }
      const parsed = parseInput(entry.op.input, input ?? {});
      return await _calls.run(call, () => entry.op.run(getContext(), parsed, call));
    },
  };
}

/** The call being served, wherever the op's work goes (the hub records its cause with the op). */
export function currentCall(): OpCall | undefined {
  return _calls.getStore();
}

const _calls = new AsyncLocalStorage<OpCall>();

/** Validates input against a schema, throwing `invalid_input` with one readable line and the zod issues. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.map(String), code: i.code, message: i.message }));
  const first = issues[0]!;
  const where = first.path.length ? `"${first.path.join(".")}"` : "input";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  throw new DroverError("invalid_input", `Invalid ${where}: ${first.message}${more}`, { details: issues });
}

/**
 * @module Every op as a CLI command, built from the op's zod schema: `item.claim` is
 * `drover item claim --id … --agent …`, `log` is `drover log`. Commands run the op in this process against the
 * same store as the daemon (no daemon needed), then tell a running daemon to publish the events.
 */
import type { ArgsDef, CommandDef } from "citty";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import type { Feature, OpDef } from "../core/feature.ts";
import { coerceFields, type Field, fieldsOf } from "../core/fields.ts";
import { inputSchemaOf } from "../core/ops.ts";
import { renderResult } from "./output.ts";
import { withRuntime } from "./project.ts";

/** Commands for every op of the features, grouped by the op name's first segment. */
export function opCommands(features: readonly Feature[]): Record<string, CommandDef<any>> {
  const groups = new Map<string, Record<string, CommandDef<any>>>();
  const single: Record<string, CommandDef<any>> = {};
  for (const f of features) {
    for (const [name, op] of Object.entries(f.ops ?? {})) {
      const [head, ...rest] = name.split(".");
      if (!rest.length) single[head!] = opCommand(name, op);
      else {
        if (!groups.has(head!)) groups.set(head!, {});
        groups.get(head!)![rest.join("-")] = opCommand(name, op);
      }
    }
  }
  const out: Record<string, CommandDef<any>> = { ...single };
  for (const [head, subCommands] of groups) {
    out[head] = {
      meta: { name: head, description: `${head} commands: ${Object.keys(subCommands).join(", ")}` },
      subCommands,
      default: subCommands.list ? "list" : undefined, // `drover agents` lists them
    };
  }
  return out;
}

/** One op as a command with a flag per input field, plus `--json`. */
export function opCommand(name: string, op: OpDef): CommandDef<any> {
  const fields = fieldsOf(inputSchemaOf(op));
  const args: ArgsDef = { json: { type: "boolean", description: "Print the result as JSON" } };
  const printers = Object.entries(op.view?.flags ?? {});
  for (const [flag, { description }] of printers) args[flag] = { type: "boolean", description };
  for (const f of fields) {
    args[f.name] = {
      type: f.kind === "boolean" ? "boolean" : "string",
      description: _describe(f),
      valueHint: f.kind === "boolean" ? undefined : f.kind,
    };
  }
  return {
    meta: { name: name.split(".").at(-1), description: op.description },
    args,
    async run({ args: parsed, rawArgs }) {
      _rejectUnknownFlags(
        rawArgs,
        fields,
        printers.map(([flag]) => flag),
      );
      const raw: Record<string, unknown> = {};
      for (const f of fields) if (parsed[f.name] !== undefined) raw[f.name] = parsed[f.name];
      const result = await withRuntime((rt) => rt.ops.run(name, coerceFields(fields, raw), { via: "cli" }));
      const empty = op.view?.empty?.(result);
      const printer = printers.find(([flag]) => parsed[flag]);
      if (printer) console.log(escapeControls(printer[1].render(result)));
      else if (parsed.json) console.log(JSON.stringify(result, null, 2));
      else if (!empty) console.log(renderResult(result, op.view?.columns));
      if (empty) {
        if (!parsed.json) console.error(escapeControls(empty));
        process.exitCode = 1;
      }
    },
  };
}

// --- internal ---

function _describe(f: Field): string {
  const parts = [f.description ?? f.name];
  if (f.values) parts.push(`one of ${f.values.join(", ")}`);
  if (f.kind === "array") parts.push("comma-separated or JSON");
  if (f.kind === "json") parts.push("JSON");
  if (f.default !== undefined && !(Array.isArray(f.default) && !f.default.length))
    parts.push(`default ${JSON.stringify(f.default)}`);
  if (f.required) parts.push("required");
  return parts.join("; ");
}

function _rejectUnknownFlags(rawArgs: string[], fields: Field[], extra: string[]) {
  const known = new Set(["json", "no-json", ...extra, ...fields.flatMap((f) => [f.name, `no-${f.name}`])]);
  for (const arg of rawArgs) {
    if (!arg.startsWith("--")) continue;
    const name = arg.slice(2).split("=")[0]!;
    if (!known.has(name))
      throw new DroverError(
        "invalid_input",
        `Unknown option "--${name}": known are ${fields.map((f) => `--${f.name}`).join(", ") || "none"}`,
      );
  }
}

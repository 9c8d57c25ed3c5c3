/**
 * @module Every op as a CLI command, built from the op's zod schema: `item.claim` is
 * `drover item claim --id … --agent …`, `log` is `drover log`. Commands run the op in this process against the
 * same store as the daemon (no daemon needed), then tell a running daemon to publish the events — except an op
 * whose work lives in the daemon (`inDaemon`: `run.stop`, `relay.status`), which a running daemon runs. A command
 * takes the `:param` of its op's REST path as its argument too: `drover run stop <run>`.
 */
import type { ArgsDef, CommandDef } from "citty";
import { readDaemon } from "../core/daemon-file.ts";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import type { Feature, OpDef } from "../core/feature.ts";
import { coerceFields, type Field, fieldsOf } from "../core/fields.ts";
import { readToken } from "../core/identity.ts";
import { inputSchemaOf } from "../core/ops.ts";
import { findProject } from "../core/paths.ts";
import { renderResult } from "./output.ts";
import { withRuntime } from "./project.ts";
import { runGroupCommands } from "./runs.ts";

/** Commands that are not ops but live in an op's group (`drover run log`). */
const _groupCommands: Record<string, Record<string, CommandDef<any>>> = runGroupCommands;

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
  for (const [head, ops] of groups) {
    const subCommands = { ...ops, ..._groupCommands[head] };
    out[head] = {
      meta: { name: head, description: `${head} commands: ${Object.keys(subCommands).join(", ")}` },
      // `drover runs --state running` is `runs list --state running`: the group knows which flags take a value
      args: subCommands.list?.args,
      subCommands,
      default: subCommands.list ? "list" : undefined, // `drover agents` lists them
    };
  }
  return out;
}

/** One op as a command with a flag per input field, plus `--json`. */
export function opCommand(name: string, op: OpDef): CommandDef<any> {
  const fields = fieldsOf(inputSchemaOf(op));
  const positional = _pathParam(op);
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
      if (positional && raw[positional] === undefined && parsed._.length) raw[positional] = String(parsed._[0]);
      const input = coerceFields(fields, raw);
      const url = op.inDaemon ? readDaemon(findProject())?.url : null;
      const result = url
        ? await callDaemon(url, name, input)
        : await withRuntime((rt) => rt.ops.run(name, input, { via: "cli" }));
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

/** Runs an op in the running daemon (`POST /api/ops/<name>`); its refusal is this command's. */
export async function callDaemon(
  url: string,
  name: string,
  input: unknown,
  { timeoutMs = 30_000 }: { timeoutMs?: number } = {},
): Promise<unknown> {
  const res = await fetch(`${url}/api/ops/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${readToken(findProject())}`, "content-type": "application/json" },
    body: JSON.stringify(input),
    signal: AbortSignal.timeout(timeoutMs),
  }).catch((err: Error) => {
    throw new DroverError("busy", `Cannot reach the daemon at "${url}": ${err.message}`);
  });
  const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (res.ok) return body;
  const error = body?.error ?? { code: "internal", message: `The daemon answered ${res.status}` };
  throw new DroverError(error.code as ConstructorParameters<typeof DroverError>[0], error.message);
}

// --- internal ---

/** The one `:param` of the op's REST path, which its command also takes as an argument. */
function _pathParam(op: OpDef): string | undefined {
  const params = [...(op.http?.path.matchAll(/:([a-z_]+)/g) ?? [])].map((m) => m[1]!);
  return params.length === 1 ? params[0] : undefined;
}

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

/**
 * @module What an op's input looks like from outside: each field's kind, whether it is required, its
 * description. The CLI builds flags from it and the HTTP layer coerces query strings with it, so both
 * read the same zod schema.
 */
import { z } from "zod";

export type FieldKind = "string" | "number" | "boolean" | "enum" | "array" | "json";

export interface Field {
  name: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  values?: string[];
  default?: unknown;
}

/** The fields of an object schema, in declaration order. */
export function fieldsOf(schema: z.ZodType): Field[] {
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, s]) => _field(name, s));
}

/** Turns text values (CLI flags, query strings) into the types the schema expects; zod judges the result. */
export function coerceFields(fields: Field[], raw: Record<string, unknown>): Record<string, unknown> {
  const byName = new Map(fields.map((f) => [f.name, f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const field = byName.get(key);
    out[key] = field && typeof value === "string" ? _coerce(field.kind, value) : value;
  }
  return out;
}

// --- internal ---

function _field(name: string, schema: z.ZodType): Field {
  let s = schema;
  let required = true;
  let fallback: unknown;
  const description = schema.description;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) required = false;
    else if (s instanceof z.ZodDefault) {
      required = false;
      fallback = s.def.defaultValue;
    } else break;
    s = s.def.innerType as z.ZodType;
  }
  const field: Field = { name, kind: _kind(s), required, description: description ?? s.description };
  if (fallback !== undefined) field.default = fallback;
  if (s instanceof z.ZodEnum) field.values = s.options.map(String);
  return field;
}

function _kind(s: z.ZodType): FieldKind {
  if (s instanceof z.ZodString) return "string";
  if (s instanceof z.ZodNumber) return "number";
  if (s instanceof z.ZodBoolean) return "boolean";
  if (s instanceof z.ZodEnum) return "enum";
  if (s instanceof z.ZodArray) return "array";
  return "json";
}

function _coerce(kind: FieldKind, value: string): unknown {
  switch (kind) {
    case "number":
      return value.trim() !== "" && Number.isFinite(Number(value)) ? Number(value) : value;
    case "boolean":
      return value === "true" || value === "1" ? true : value === "false" || value === "0" ? false : value;
    case "array":
      if (value.startsWith("[")) return _json(value);
      return value === "" ? [] : value.split(",").map((v) => v.trim());
    case "json":
      return _json(value);
    default:
      return value;
  }
}

function _json(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

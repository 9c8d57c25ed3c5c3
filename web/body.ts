/** @module Reading request bodies: JSON objects only, with a clear 400 for anything else. */
import { DroverError } from "../core/errors.ts";

/** The request's JSON body as an object; an empty body is `{}`. */
export async function readJsonObject(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (!text.trim()) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DroverError("invalid_input", "Invalid body: not valid JSON");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new DroverError("invalid_input", "Invalid body: expected a JSON object");
  }
  return value as Record<string, unknown>;
}

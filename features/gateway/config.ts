/**
 * @module `gateway.toml`: the readers' token, each project's relay token, and optionally `allowed_hosts` (extra
 * Host names the gateway answers, SPEC §12) and `max_ws_clients` (readers and relays together, default 1000).
 */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";

/** Tokens travel in an `Authorization` header: printable ASCII, no spaces. */
const token = z
  .string()
  .min(16, "must be at least 16 characters")
  .max(1024, "must be at most 1024 characters")
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

const schema = z.strictObject({
  token,
  project: z
    .array(
      z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be a simple name"), token }),
    )
    .min(1, "lists no project")
    .max(1000, "lists more than 1000 projects"),
  allowed_hosts: z
    .array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a host name"))
    .max(100)
    .default([]),
  max_ws_clients: z.number().int().min(1).max(100_000).default(1000),
});

/** The keys with defaults may be left out by callers that build the config in code. */
export type GatewayConfig = z.input<typeof schema>;

export async function loadGatewayConfig(file: string): Promise<GatewayConfig> {
  const handle = Bun.file(file);
  if (!(await handle.exists())) throw new DroverError("invalid_input", `Cannot read "${file}": no such file`);
  let raw: unknown;
  try {
    raw = Bun.TOML.parse(await handle.text());
  } catch (err) {
    throw new DroverError("invalid_input", `Cannot parse "${file}": ${_oneLine((err as Error).message)}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new DroverError(
      "invalid_input",
      `Invalid value for "${i.path.join(".") || "file"}" in "${file}": ${_oneLine(i.message)}`,
    );
  }
  const names = parsed.data.project.map((p) => p.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new DroverError("invalid_input", `Invalid "${file}": project "${twice}" is listed twice`);
  return parsed.data;
}

// --- internal ---

/** A message on one line of printable text (a parser's message may quote the file's bytes). */
function _oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, " ").slice(0, 300);
}

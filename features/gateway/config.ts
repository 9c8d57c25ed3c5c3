/** @module `gateway.toml`: the readers' token and each project's relay token. */
import { z } from "zod";
import { DroverError } from "../../core/errors.ts";

const schema = z.strictObject({
  token: z.string().min(16, "must be at least 16 characters"),
  project: z
    .array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be a simple name"), token: z.string().min(16, "must be at least 16 characters") }))
    .min(1, "lists no project"),
});

export type GatewayConfig = z.output<typeof schema>;

export async function loadGatewayConfig(file: string): Promise<GatewayConfig> {
  const handle = Bun.file(file);
  if (!(await handle.exists())) throw new DroverError("invalid_input", `Cannot read "${file}": no such file`);
  let raw: unknown;
  try {
    raw = Bun.TOML.parse(await handle.text());
  } catch (err) {
    throw new DroverError("invalid_input", `Cannot parse "${file}": ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new DroverError("invalid_input", `Invalid value for "${i.path.join(".") || "file"}" in "${file}": ${i.message}`);
  }
  const names = parsed.data.project.map((p) => p.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new DroverError("invalid_input", `Invalid "${file}": project "${twice}" is listed twice`);
  return parsed.data;
}

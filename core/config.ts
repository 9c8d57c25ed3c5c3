/**
 * @module `.drover/config.toml`: every key optional with the SPEC §11 default, environment overrides on top.
 * An unknown key is reported, not fatal; a bad value is an error naming the key and the file.
 */
import { z } from "zod";
import { DroverError } from "./errors.ts";

const secs = z.number().int().min(1).max(31_536_000);

export const configSchema = z.object({
  server: z
    .object({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65_535).default(4317),
      allowed_hosts: z.array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a host name")).max(100).default([]),
      max_ws_clients: z.number().int().min(1).max(100_000).default(1000),
    })
    .prefault({}),
  hub: z
    .object({
      remote: z.string().default("origin"),
      branch: z.string().min(1).default("drover/hub"),
      sync_interval_secs: secs.default(10),
      presence_secs: secs.default(60),
      network_timeout_secs: secs.default(20),
      max_file_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    })
    .prefault({}),
  heartbeats: z
    .object({
      idle_after_secs: secs.default(300),
      stale_after_secs: secs.default(1800),
      poll_secs: secs.default(30),
      takeover_grace_secs: secs.default(60),
    })
    .prefault({}),
  pipeline: z
    .object({
      auto_assign: z.boolean().default(true),
      claim_ttl_secs: secs.default(3600),
      claim_confirm_secs: secs.default(15),
      done_retention_secs: secs.default(14_400),
      worktrees: z.boolean().default(true),
      base_branch: z.string().default(""),
    })
    .prefault({}),
  reconcile: z.object({ interval_secs: secs.default(30) }).prefault({}),
  triggers: z.object({ max_actions_per_event: z.number().int().min(1).max(10_000).default(100) }).prefault({}),
  gateway: z
    .object({
      url: z.string().default(""),
      project: z.string().default(""),
      token: z.string().default(""),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;

export interface LoadedConfig {
  config: Config;
  /** Readable warnings, one per unknown key. */
  warnings: string[];
  /** The dotted keys this machine's environment set (they override the file, and need no trust). */
  fromEnv: Set<string>;
}

/** Every key at its default. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}

/** Parses TOML text (or nothing) into a full config with defaults and environment overrides applied. */
export function parseConfig(
  text: string | undefined,
  options: { file?: string; env?: Record<string, string | undefined> } = {},
): LoadedConfig {
  const file = options.file ?? "config.toml";
  let raw: Record<string, unknown> = {};
  if (text !== undefined && text.trim() !== "") {
    try {
      raw = Bun.TOML.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new DroverError("bad_config", `Cannot parse "${file}": ${(err as Error).message}`);
    }
  }
  const warnings = _unknownKeys(raw, configSchema, "").map((key) => `Unknown key "${key}" in "${file}"`);
  const fromEnv = _applyEnv(raw, options.env ?? process.env, file);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DroverError("bad_config", `Invalid value for "${issue.path.join(".")}" in "${file}": ${issue.message}`);
  }
  return { config: parsed.data, warnings, fromEnv };
}

/** Reads and parses a config file; a missing file means all defaults. */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const handle = Bun.file(file);
  const text = (await handle.exists()) ? await handle.text() : undefined;
  return parseConfig(text, { file });
}

// --- internal ---

const ENV: Array<[string, string, string, "string" | "port"]> = [
  ["DROVER_HOST", "server", "host", "string"],
  ["DROVER_PORT", "server", "port", "port"],
  ["DROVER_GATEWAY_URL", "gateway", "url", "string"],
  ["DROVER_GATEWAY_TOKEN", "gateway", "token", "string"],
  ["DROVER_GATEWAY_PROJECT", "gateway", "project", "string"],
];

function _applyEnv(raw: Record<string, unknown>, env: Record<string, string | undefined>, file: string): Set<string> {
  const set = new Set<string>();
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new DroverError("bad_config", `Cannot read "${file}": not a table`);
  for (const [name, section, key, kind] of ENV) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    set.add(`${section}.${key}`);
    const table = (raw[section] ??= {}) as Record<string, unknown>;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new DroverError("bad_config", `Invalid value for "${section}" in "${file}": expected a table`);
    }
    if (kind === "port") {
      const port = Number(value);
      if (!Number.isInteger(port)) throw new DroverError("bad_config", `Invalid value for "${name}": "${value}" is not a port number`);
      table[key] = port;
    } else table[key] = value;
  }
  return set;
}

function _unknownKeys(raw: unknown, schema: z.ZodType, prefix: string): string[] {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return [];
  const shape = _shapeOf(schema);
  if (!shape) return [];
  const out: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const child = shape[key];
    if (!child) out.push(path);
    else out.push(..._unknownKeys(value, child, path));
  }
  return out;
}

function _shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let s: unknown = schema;
  while (s && typeof s === "object") {
    if (s instanceof z.ZodObject) return s.shape as Record<string, z.ZodType>;
    const inner = (s as { def?: { innerType?: unknown } }).def?.innerType;
    if (!inner) return undefined;
    s = inner;
  }
  return undefined;
}

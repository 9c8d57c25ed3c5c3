/**
 * @module `.drover/config.toml`: every key optional with the SPEC §11 default, environment overrides on top.
 * An unknown key is reported, not fatal; a bad value is an error naming the key and the file.
 */
import { z } from "zod";
import type { ContractConfigPart, ContractSection } from "./contract.ts";
import { DroverError } from "./errors.ts";
import { coerceFields, fieldsOf } from "./fields.ts";

/** A duration setting in whole seconds, 1 s to a year. */
export const secs = z.number().int().min(1).max(31_536_000);

/**
 * Keys of one `[section]` of config.toml, with their defaults; `env` names the environment variables that
 * override a key on this machine. Several parts may share a section (a feature adding keys to another's table).
 */
export interface ConfigPart<
  S extends string = string,
  T extends z.ZodRawShape = z.ZodRawShape,
  E extends z.ZodType = z.ZodType,
> {
  section: S;
  keys: T;
  env?: Partial<Record<keyof T & string, string>>;
  /** Tables named by the user inside the section (`[runners.<name>]`): each name matches `name`, each table `schema`. */
  entries?: { name: RegExp; schema: E };
}

/** Declares config keys in a section (identity at the type level); `defineFeature` registers a feature's. */
export function defineConfig<S extends string, T extends z.ZodRawShape, E extends z.ZodType = z.ZodNever>(
  section: S,
  keys: T,
  options: { env?: Partial<Record<keyof T & string, string>>; entries?: { name: RegExp; schema: E } } = {},
): ConfigPart<S, T, E> {
  return { section, keys, ...options };
}

export const coreConfig = {
  server: defineConfig(
    "server",
    {
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65_535).default(4317),
      allowed_hosts: z
        .array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a host name"))
        .max(100)
        .default([]),
      max_ws_clients: z.number().int().min(1).max(100_000).default(1000),
    },
    { env: { host: "DROVER_HOST", port: "DROVER_PORT" } },
  ),
  reconcile: defineConfig("reconcile", { interval_secs: secs.default(30) }),
};

/** The whole config: one object per section, holding the keys of every part declared in it. */
export type Config = { [S in ContractConfigPart["section"]]: ContractSection<S> };

/** Adds config parts to the registry (`defineFeature` does it with a feature's); a key is declared once. */
export function registerConfig(parts: readonly ConfigPart[]): void {
  for (const part of parts) {
    if (_parts.includes(part)) continue;
    for (const key of Object.keys(part.keys)) {
      const owner = _parts.find((p) => p.section === part.section && Object.hasOwn(p.keys, key));
      if (owner) throw new Error(`Cannot declare config key "${part.section}.${key}" twice`);
    }
    _parts.push(part);
    _schema = undefined;
  }
}

/** The schema of config.toml made of every registered part. */
export function configSchema(): z.ZodObject {
  if (_schema) return _schema;
  const sections = new Map<string, z.ZodRawShape>();
  for (const part of _parts) sections.set(part.section, { ...sections.get(part.section), ...part.keys });
  return (_schema = z.object(
    Object.fromEntries(
      [...sections].map(([name, keys]) => {
        const entries = _parts.find((p) => p.section === name && p.entries)?.entries;
        return [name, (entries ? _withEntries(keys, entries) : z.object(keys)).prefault({})];
      }),
    ),
  ));
}

export interface LoadedConfig {
  config: Config;
  /** Readable warnings, one per unknown key. */
  warnings: string[];
  /** The dotted keys this machine's environment set (they override the file, and need no trust). */
  fromEnv: Set<string>;
}

/** Every key at its default. */
export function defaultConfig(): Config {
  return configSchema().parse({}) as Config;
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
  const schema = configSchema();
  const warnings = _unknownKeys(raw, schema, "").map((key) => `Unknown key "${key}" in "${file}"`);
  const fromEnv = _applyEnv(raw, options.env ?? process.env, file);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DroverError("bad_config", `Invalid value for "${issue.path.join(".")}" in "${file}": ${issue.message}`);
  }
  return { config: parsed.data as Config, warnings, fromEnv };
}

/** Reads and parses a config file; a missing file means all defaults. */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const handle = Bun.file(file);
  const text = (await handle.exists()) ? await handle.text() : undefined;
  return parseConfig(text, { file });
}

// --- internal ---

function _applyEnv(raw: Record<string, unknown>, env: Record<string, string | undefined>, file: string): Set<string> {
  const set = new Set<string>();
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new DroverError("bad_config", `Cannot read "${file}": not a table`);
  for (const { section, keys, env: names = {} } of _parts) {
    for (const [key, name] of Object.entries(names) as Array<[string, string]>) {
      const value = env[name];
      if (value === undefined || value === "") continue;
      set.add(`${section}.${key}`);
      const table = (raw[section] ??= {}) as Record<string, unknown>;
      if (typeof table !== "object" || table === null || Array.isArray(table)) {
        throw new DroverError("bad_config", `Invalid value for "${section}" in "${file}": expected a table`);
      }
      table[key] = _envValue(keys[key]!, name, value);
    }
  }
  return set;
}

/** An environment variable's text as the key's type, read as a CLI flag is (core/fields.ts); a bad one is named. */
function _envValue(schema: z.core.$ZodType, name: string, value: string): unknown {
  const field = fieldsOf(z.object({ [name]: schema }));
  const typed = coerceFields(field, { [name]: value })[name];
  const checked = z.safeParse(schema, typed);
  if (!checked.success)
    throw new DroverError(
      "bad_config",
      `Invalid value for "${name}": ${JSON.stringify(value.slice(0, 100))}: ${checked.error.issues[0]!.message}`,
    );
  return typed;
}

/** A section of fixed keys plus tables the user names; a name that does not match is an error naming it. */
function _withEntries(keys: z.ZodRawShape, entries: { name: RegExp; schema: z.ZodType }): z.ZodType {
  return z
    .object(keys)
    .catchall(entries.schema)
    .superRefine((table, check) => {
      for (const name of Object.keys(table)) {
        if (Object.hasOwn(keys, name) || entries.name.test(name)) continue;
        check.addIssue({ code: "custom", path: [name], message: `must be a name matching ${entries.name}` });
      }
    });
}

function _unknownKeys(raw: unknown, schema: z.ZodType, prefix: string): string[] {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return [];
  const object = _objectOf(schema);
  if (!object) return [];
  const shape = object.shape as Record<string, z.ZodType>;
  const catchall = object.def.catchall as z.ZodType | undefined;
  const out: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const child = shape[key] ?? catchall;
    if (!child) out.push(path);
    else out.push(..._unknownKeys(value, child, path));
  }
  return out;
}

function _objectOf(schema: z.ZodType): z.ZodObject | undefined {
  let s: unknown = schema;
  while (s && typeof s === "object") {
    if (s instanceof z.ZodObject) return s;
    const def = (s as { def?: { innerType?: unknown; in?: unknown } }).def;
    const inner = def?.innerType ?? def?.in; // defaults and prefaults wrap it; a refinement pipes from it
    if (!inner) return undefined;
    s = inner;
  }
  return undefined;
}

const _parts: ConfigPart[] = Object.values(coreConfig);
let _schema: z.ZodObject | undefined;

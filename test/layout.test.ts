/**
 * The shape of the codebase, checked (CONTRIBUTING.md): layers import downwards only — core imports no layer
 * above it, hub, web and clients only core, a feature only core, hub, web, clients and its own folder (never another feature,
 * `server/`, `cli/` or the runtime) — and core names nothing a feature declares: no op, event, error code,
 * config section or key of a feature appears in core's source.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { configSchema } from "../core/config.ts";
import { coreErrors } from "../core/errors.ts";
import { coreEvents } from "../core/events.ts";
import type { Feature } from "../core/feature.ts";
import { allFeatures } from "../runtime.ts";
import notes from "./fixtures/features/notes/index.ts";

const ROOT = resolve(import.meta.dir, "..");

/** Where each folder may import from (besides packages, `node:` and `bun:` modules). */
const RULES: Array<{ folder: RegExp; may: (target: string, from: string) => boolean; says: string }> = [
  { folder: /^core\//, may: (t) => t.startsWith("core/"), says: "core imports only core" },
  { folder: /^hub\//, may: (t) => /^(core|hub)\//.test(t), says: "the hub layer imports only core and hub" },
  {
    folder: /^web\//,
    may: (t) => /^(core|web)\//.test(t) || t.endsWith(".html"),
    says: "web imports only core and web",
  },
  { folder: /^clients\//, may: (t) => /^(core|clients)\//.test(t), says: "clients imports only core and clients" },
  {
    folder: /^(features\/[^/]+|test\/fixtures\/features\/[^/]+)\//,
    may: (t, from) => /^(core|hub|web|clients)\//.test(t) || t.startsWith(_featureFolder(from)),
    says: "a feature imports only core, hub, web, clients and its own folder",
  },
  { folder: /^server\//, may: (t) => !t.startsWith("cli/"), says: "the server imports no CLI code" },
];

describe("imports go downwards", () => {
  const files = _sources();

  test("the rules see every layer's files", () => {
    for (const folder of [
      "core/",
      "hub/",
      "web/",
      "clients/",
      "server/",
      "features/pipeline/",
      "features/sync/",
      "test/fixtures/features/",
    ]) {
      expect(files.some((f) => f.startsWith(folder))).toBe(true);
    }
  });

  test.each(RULES.map((r) => [r.says, r] as const))("%s", (_says, rule) => {
    const broken: string[] = [];
    for (const file of files.filter((f) => rule.folder.test(f))) {
      for (const target of _imports(file)) if (!rule.may(target, file)) broken.push(`${file} → ${target}`);
    }
    expect(broken).toEqual([]);
  });

  test("a feature merges declarations only into core and the hub layer, never into another feature", () => {
    const broken: string[] = [];
    for (const file of files.filter((f) => f.startsWith("features/"))) {
      for (const target of _augmented(file)) if (!/^(core|hub)\//.test(target)) broken.push(`${file} → ${target}`);
    }
    expect(broken).toEqual([]);
  });
});

describe("core names no feature", () => {
  const core = _sources()
    .filter((f) => f.startsWith("core/"))
    .map((f) => readFileSync(join(ROOT, f), "utf8"))
    .join("\n");
  const all: readonly Feature[] = allFeatures;
  // `.drover/hub` is a folder of SPEC §2's layout, which core/paths.ts describes: the hub layer's section may share its name
  const coreSections = new Set(["server", "reconcile", "hub"]);

  test("no feature's op, event, error code or config section is quoted in core", () => {
    const names = new Set<string>();
    for (const f of all) {
      for (const op of Object.keys(f.ops ?? {})) names.add(op);
      for (const type of Object.keys(f.events ?? {})) if (!Object.hasOwn(coreEvents, type)) names.add(type);
      for (const code of Object.keys(f.errors ?? {})) if (!Object.hasOwn(coreErrors, code)) names.add(code);
      for (const part of f.config ?? []) if (!coreSections.has(part.section)) names.add(part.section);
    }
    expect(names.size).toBeGreaterThan(40);
    expect(
      [...names].filter((n) => core.includes(`"${n}"`) || core.includes(`'${n}'`) || core.includes(`\`${n}\``)),
    ).toEqual([]);
  });

  test("no key of a feature's config section is quoted in core: a feature passes its keys in", () => {
    const sections = all.flatMap((f) => (f.config ?? []).map((p) => p.section)).filter((s) => !coreSections.has(s));
    expect(sections.length).toBeGreaterThan(5);
    const quoted = [...new Set(sections)].filter((s) => ['"', "'", "`"].some((q) => core.includes(`${q}${s}.`)));
    expect(quoted).toEqual([]);
  });

  test("every config section but the runtime's own comes from a feature or the hub layer", () => {
    // the registry is filled by imports: the test-only feature is imported here too, so the file order of a bun
    // test process (which shares modules across files) changes nothing
    const declared = new Set([
      ...coreSections,
      ...[...all, notes].flatMap((f) => (f.config ?? []).map((p) => p.section)),
    ]);
    expect(Object.keys(configSchema().shape).filter((s) => !declared.has(s))).toEqual([]);
  });
});

// --- internal ---

function _sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!["node_modules", "dist", ".git", ".bench-work"].includes(entry.name) && !entry.name.startsWith("."))
          walk(path);
      } else if (entry.name.endsWith(".ts")) out.push(path);
    }
  };
  walk("");
  return out.sort();
}

/** The project files a source file imports (static, dynamic and type-only), relative to the root. */
function _imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g)].map(
    (m) => m[1]!,
  );
  return specifiers.filter((s) => s.startsWith(".")).map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)));
}

/** The modules a source file merges declarations into (`declare module "…"`), relative to the root. */
function _augmented(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/declare module\s+["'](\.[^"']+)["']/g)].map((m) =>
    relative(ROOT, resolve(ROOT, dirname(file), m[1]!)),
  );
}

function _featureFolder(file: string): string {
  return /^(features\/[^/]+|test\/fixtures\/features\/[^/]+)\//.exec(file)![0];
}

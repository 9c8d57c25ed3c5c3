import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { z } from "zod";
import { coreConfig, parseConfig } from "../core/config.ts";
import { DroverError } from "../core/errors.ts";
import { allFeatures } from "../runtime.ts"; // every feature's config keys, registered as the runtime loads them
import { hostileRuns } from "./helpers.ts";

describe("config", () => {
  test("every key has the SPEC default", () => {
    const { config, warnings } = parseConfig(undefined, { env: {} });
    expect(warnings).toEqual([]);
    expect(config.server).toEqual({ host: "127.0.0.1", port: 4317, allowed_hosts: [], max_ws_clients: 1000 });
    expect(config.hub).toEqual({
      remote: "origin",
      branch: "drover/hub",
      sync_interval_secs: 10,
      presence_secs: 60,
      network_timeout_secs: 20,
      max_file_bytes: 1024 * 1024,
      outbox_retention_days: 7,
    });
    expect(config.runners).toEqual({});
    expect(config.merge).toEqual({
      mode: "auto",
      strategy: "merge",
      check: [],
      check_timeout_mins: 30,
      push: false,
      max_failures: 3,
    });
    expect(config.triggers.max_actions_per_event).toBe(100);
    expect(config.heartbeats.idle_after_secs).toBe(300);
    expect(config.pipeline.claim_ttl_secs).toBe(3600);
    expect(config.reconcile.interval_secs).toBe(30);
  });

  test("an unknown key is reported, not fatal", () => {
    const { config, warnings } = parseConfig('[server]\nhots = "x"\nport = 5000\n[nope]\na = 1\n', {
      file: "c.toml",
      env: {},
    });
    expect(config.server.port).toBe(5000);
    expect(warnings).toEqual(['Unknown key "server.hots" in "c.toml"', 'Unknown key "nope" in "c.toml"']);
  });

  test("a bad value is an error naming the key and the file", () => {
    expect(() => parseConfig('[server]\nport = "high"\n', { file: "/p/.drover/config.toml", env: {} })).toThrow(
      /Invalid value for "server.port" in "\/p\/.drover\/config.toml"/,
    );
    expect(() => parseConfig("[server\n", { file: "c.toml", env: {} })).toThrow(/Cannot parse "c.toml"/);
  });

  test("environment overrides the file", () => {
    const { config } = parseConfig("[server]\nport = 5000\n", {
      env: { DROVER_PORT: "6000", DROVER_HOST: "0.0.0.0", DROVER_GATEWAY_PROJECT: "p" },
    });
    expect(config.server).toMatchObject({ host: "0.0.0.0", port: 6000 });
    expect(config.gateway.project).toBe("p");
    expect(() => parseConfig(undefined, { env: { DROVER_PORT: "x" } })).toThrow(/DROVER_PORT/);
  });

  test("any text in any declared environment variable: the key's value, or one bad_config line naming the variable", () => {
    const vars = [...Object.values(coreConfig), ...allFeatures.flatMap((f) => f.config ?? [])].flatMap((part) =>
      Object.entries(part.env ?? {}).map(([key, name]) => ({
        section: part.section,
        key,
        name: name!,
        schema: (part.keys as z.ZodRawShape)[key]!,
      })),
    );
    expect(vars.map((v) => v.name)).toContain("DROVER_PORT");
    const text = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.string({ unit: "binary", maxLength: 30 }),
      fc.integer().map(String),
      fc.double().map(String),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.constantFrom(" ", "0", "-1", "65536", "1e3", "1.5", "0x10", "Infinity", "NaN", "a,b", "[1]", "__proto__"),
      fc.constant("9".repeat(5000)),
    );
    fc.assert(
      fc.property(fc.constantFrom(...vars.map((v) => v.name)), text, (name, value) => {
        const { section, key, schema } = vars.find((v) => v.name === name)!;
        let config: Record<string, Record<string, unknown>>;
        try {
          config = parseConfig(undefined, { env: { [name]: value } }).config as never;
        } catch (err) {
          expect(err).toBeInstanceOf(DroverError);
          expect((err as DroverError).code).toBe("bad_config");
          expect((err as DroverError).message).toStartWith(`Invalid value for "${name}": `);
          expect((err as DroverError).message).not.toContain("\n");
          return;
        }
        const got = config[section]![key];
        expect(z.safeParse(schema, got).success).toBe(true);
        // an empty variable is no setting: the default stands
        if (value !== "") expect(got).toEqual(typeof got === "number" ? Number(value) : value);
      }),
      { numRuns: hostileRuns(500) },
    );
  });

  test("a runner whose on_success is one of its own stages is refused: it would run the item again forever", () => {
    expect(() =>
      parseConfig('[runners.review]\npreset = "command"\ncommand = ["x"]\nstages = ["qa"]\n', { env: {} }),
    ).toThrow('Invalid value for "runners.review.on_success"');
    const ok = parseConfig(
      '[runners.review]\npreset = "command"\ncommand = ["x"]\nstages = ["qa"]\non_success = "merge"\n',
      {
        env: {},
      },
    );
    expect(ok.config.runners.review?.on_success).toBe("merge");
  });
});

/**
 * The conformance suite every feature must pass (in the manner of unstorage's driver suite), as a function so a
 * feature made only for a test (test/feature-folder.test.ts) runs through the same checks: its name and op
 * names, its declarations registered and taken by no one else, reconcile idempotent and silent the second time,
 * every op rejecting invalid input with a 400 at `/api/ops/<name>` and at its own REST route, changing nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { configSchema, coreConfig } from "../core/config.ts";
import type { Contract } from "../core/contract.ts";
import { coreErrors } from "../core/errors.ts";
import { coreEvents, type EventDef, eventDef } from "../core/events.ts";
import type { Feature } from "../core/feature.ts";
import { type Field, fieldsOf } from "../core/fields.ts";
import { inputSchemaOf } from "../core/ops.ts";
import { createApp } from "../server/app.ts";
import { tempProject, testRuntime } from "./helpers.ts";

const TOKEN = "t0k3n";

/** Registers the suite for `feature`, run in a runtime of `all` (which holds it). */
export function featureContract(feature: Feature, all: readonly Feature[]): void {
  describe(`feature ${feature.name}`, () => {
    let project: Awaited<ReturnType<typeof tempProject>>;
    let ctx: Awaited<ReturnType<typeof testRuntime>>;
    let app: ReturnType<typeof createApp>;

    beforeAll(async () => {
      project = await tempProject();
      ctx = await testRuntime(project.paths, { features: all });
      app = createApp(ctx.rt, { token: TOKEN, version: "test", startedAt: Date.now() });
      // some state for reconcile to look at
      const a = (await ctx.rt.ops.run("item.create", { title: "a" })) as { id: string };
      await ctx.rt.ops.run("item.create", { title: "b", depends_on: [a.id] });
      await ctx.rt.ops.run("item.claim", { id: a.id, agent: "agent-1" });
    });
    afterAll(async () => {
      await ctx.rt.close();
      project.cleanup();
    });

    test("has a unique name and ops named feature-style", () => {
      expect(ctx.rt.features.filter((f) => f.name === feature.name)).toHaveLength(1);
      for (const name of Object.keys(feature.ops ?? {})) expect(name).toMatch(/^[a-z]+(\.[a-z]+)*$/);
    });

    test("its events, error codes and config keys are registered, under names nobody else declares", () => {
      for (const [type, def] of Object.entries(feature.events ?? {})) expect(eventDef(type)).toBe(def);
      const shape = configSchema().shape as Record<string, unknown>;
      for (const part of feature.config ?? []) expect(shape[part.section]).toBeDefined();
      expect(Object.keys(ctx.rt.ctx.config)).toEqual(
        expect.arrayContaining((feature.config ?? []).map((p) => p.section)),
      );
      // registering lets a name through twice when both declare the same thing (one event object, one status)
      const others = [_runtimeContract, ...all.filter((f) => f !== feature)].flatMap(_names);
      expect(_names(feature).filter((name) => others.includes(name))).toEqual([]);
    });

    test.skipIf(!feature.reconcile)(
      "reconcile twice: the second run changes nothing and publishes nothing",
      async () => {
        await feature.reconcile!(ctx.rt.ctx);
        await ctx.rt.ctx.bus.idle();
        const before = ctx.events.length;
        const report = await feature.reconcile!(ctx.rt.ctx);
        await ctx.rt.ctx.bus.idle();
        expect(report.changed).toBe(0);
        expect(ctx.events.slice(before)).toEqual([]);
      },
    );

    for (const [opName, op] of Object.entries(feature.ops ?? {})) {
      test(`op "${opName}" rejects invalid input with a 400 and changes nothing`, async () => {
        const head = await ctx.rt.ctx.hub.repo.head();
        const cases: unknown[] = [
          { __unknown_field: 1 },
          { "two\nlines": 1 },
          [],
          "text",
          ...fieldsOf(inputSchemaOf(op)).map((f) => ({ [f.name]: _wrongValue(f) })),
        ];
        for (const body of cases) {
          const res = await app.request(`/api/ops/${opName}`, {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}` },
            body: JSON.stringify(body),
          });
          // an op that is a person's choice is refused over HTTP whatever its input (a body that is no object is
          // refused before any op is looked at)
          const refused = op.cliOnly && body !== null && typeof body === "object" && !Array.isArray(body);
          expect({ body, status: res.status }).toEqual({ body, status: refused ? 403 : 400 });
          const json = (await res.json()) as { error: { code: string; message: string } };
          expect(json.error.code).toBe(refused ? "forbidden" : "invalid_input");
          expect(json.error.message).not.toContain("\n");
        }
        expect(await ctx.rt.ctx.hub.repo.head()).toBe(head);
      });

      if (op.http) {
        const { method, path } = op.http;
        test(`op "${opName}" at ${method} ${path}: invalid input is a 400 there too`, async () => {
          const head = await ctx.rt.ctx.hub.repo.head();
          const url = path.replace(/:([a-z_]+)/g, "zz-not-an-id");
          const res = await app.request(method === "GET" ? `${url}?__unknown_field=1` : url, {
            method,
            headers: { authorization: `Bearer ${TOKEN}` },
            ...(method === "GET" ? {} : { body: JSON.stringify({ __unknown_field: 1 }) }),
          });
          expect(res.status).toBe(400);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_input");
          expect(await ctx.rt.ctx.hub.repo.head()).toBe(head);
        });
      }
    }
  });
}

/**
 * The event types the runtime and `list` declare, from the lists themselves: core/events.ts's registry holds what
 * this test process loaded (a test-only feature too), which a daemon process does not know.
 */
export function declaredEvents(list: readonly Feature[]): Record<string, EventDef> {
  return Object.assign({}, coreEvents, ...list.map((f) => f.events ?? {}));
}

// --- internal ---

const _runtimeContract: Contract = { events: coreEvents, errors: coreErrors, config: Object.values(coreConfig) };

/** Every name a contract takes in the shared name spaces. */
function _names(contract: Contract): string[] {
  return [
    ...Object.keys(contract.events ?? {}).map((type) => `event "${type}"`),
    ...Object.keys(contract.errors ?? {}).map((code) => `error code "${code}"`),
    ...(contract.config ?? []).flatMap((p) => Object.keys(p.keys).map((key) => `config key "${p.section}.${key}"`)),
  ];
}

function _wrongValue(f: Field): unknown {
  switch (f.kind) {
    case "string":
    case "enum":
      return { not: "a string" };
    case "number":
      return "not a number";
    case "boolean":
      return "not a boolean";
    case "array":
      return 42;
    default:
      return Symbol.for("x").toString();
  }
}

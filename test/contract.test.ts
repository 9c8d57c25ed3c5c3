/**
 * The conformance suite every feature must pass (in the manner of unstorage's driver suite): reconcile is
 * idempotent and silent the second time, every op rejects invalid input with a 400, a throwing `on` handler
 * or `tick` is isolated by the runtime. A new feature is covered by adding it to `features` in runtime.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { manualClock } from "../core/clock.ts";
import { defineFeature, type Feature } from "../core/feature.ts";
import { fieldsOf, type Field } from "../core/fields.ts";
import { inputSchemaOf } from "../core/ops.ts";
import { features } from "../runtime.ts";
import { createApp } from "../server/app.ts";
import { tempProject, testRuntime } from "./helpers.ts";

const TOKEN = "t0k3n";

describe.each(features.map((f) => [f.name, f] as const))("feature %s", (_name, feature) => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  let ctx: Awaited<ReturnType<typeof testRuntime>>;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    project = await tempProject();
    ctx = await testRuntime(project.paths);
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
    expect(features.filter((f) => f.name === feature.name)).toHaveLength(1);
    for (const name of Object.keys(feature.ops ?? {})) expect(name).toMatch(/^[a-z]+(\.[a-z]+)*$/);
  });

  test("reconcile twice: the second run changes nothing and publishes nothing", async () => {
    if (!feature.reconcile) return;
    await feature.reconcile(ctx.rt.ctx);
    await ctx.rt.ctx.bus.idle();
    const before = ctx.events.length;
    const report = await feature.reconcile(ctx.rt.ctx);
    await ctx.rt.ctx.bus.idle();
    expect(report.changed).toBe(0);
    expect(ctx.events.slice(before)).toEqual([]);
  });

  for (const [opName, op] of Object.entries(feature.ops ?? {})) {
    test(`op "${opName}" rejects invalid input with a 400 and changes nothing`, async () => {
      const head = await ctx.rt.ctx.services.hub.repo.head();
      const cases: unknown[] = [{ __unknown_field: 1 }, [], "text", ...fieldsOf(inputSchemaOf(op)).map((f) => ({ [f.name]: _wrongValue(f) }))];
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
      expect(await ctx.rt.ctx.services.hub.repo.head()).toBe(head);
    });
  }
});

describe("runtime isolation", () => {
  test("a throwing `on` handler does not stop other subscribers", async () => {
    const project = await tempProject();
    const seen: string[] = [];
    const thrower = defineFeature({ name: "thrower", on: { transition: () => { throw new Error("handler failed"); } } });
    const recorder = defineFeature({ name: "recorder", on: { transition: (_c, e) => void seen.push(e.type) } });
    const { rt } = await testRuntime(project.paths, { features: [...features, thrower, recorder] });
    const item = (await rt.ops.run("item.create", { title: "x" })) as { id: string };
    await rt.ops.run("item.move", { id: item.id, to: "coding" });
    await rt.ops.run("item.move", { id: item.id, to: "qa" });
    await rt.ctx.bus.idle();
    expect(seen).toEqual(["transition", "transition"]);
    await rt.close();
    project.cleanup();
  });

  test("a throwing `tick` does not stop the other features' ticks", async () => {
    const project = await tempProject();
    const clock = manualClock("2026-03-01T00:00:00Z");
    const broken = defineFeature({ name: "broken", tick: () => { throw new Error("tick failed"); } });
    const { rt, events } = await testRuntime(project.paths, { clock, features: [broken, ...features] as Feature[] });
    const item = (await rt.ops.run("item.create", { title: "x" })) as { id: string };
    await rt.ops.run("item.claim", { id: item.id, agent: "a1", ttl_secs: 5 });
    clock.advance(6000);
    await rt.tick();
    await rt.ctx.bus.idle();
    expect(events.find((e) => e.type === "claim_released")).toMatchObject({ item_id: item.id, agent_id: "a1", reason: "expired" });
    await rt.close();
    project.cleanup();
  });
});

// --- internal ---

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

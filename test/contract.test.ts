/**
 * The conformance suite (test/contract.ts) for the hub layer and every feature in runtime.ts, and the runtime's
 * isolation of a throwing handler or tick. A new feature is covered by adding it to `features` in runtime.ts.
 */
import { describe, expect, test } from "bun:test";
import { manualClock } from "../core/clock.ts";
import { defineFeature } from "../core/feature.ts";
import hub from "../hub/index.ts";
import { allFeatures, features } from "../runtime.ts";
import { featureContract } from "./contract.ts";
import { tempProject, testRuntime } from "./helpers.ts";

for (const feature of allFeatures) featureContract(feature, allFeatures);

describe("runtime isolation", () => {
  test("a throwing `on` handler does not stop other subscribers", async () => {
    const project = await tempProject();
    const seen: string[] = [];
    const thrower = defineFeature({
      name: "thrower",
      on: {
        transition: () => {
          throw new Error("handler failed");
        },
      },
    });
    const recorder = defineFeature({ name: "recorder", on: { transition: (_c, e) => void seen.push(e.type) } });
    const { rt } = await testRuntime(project.paths, { features: [...allFeatures, thrower, recorder] });
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
    const broken = defineFeature({
      name: "broken",
      tick: () => {
        throw new Error("tick failed");
      },
    });
    const { rt, events } = await testRuntime(project.paths, { clock, features: [hub, broken, ...features] });
    const item = (await rt.ops.run("item.create", { title: "x" })) as { id: string };
    await rt.ops.run("item.claim", { id: item.id, agent: "a1", ttl_secs: 5 });
    clock.advance(6000);
    await rt.tick();
    await rt.ctx.bus.idle();
    expect(events.find((e) => e.type === "claim_released")).toMatchObject({
      item_id: item.id,
      agent_id: "a1",
      reason: "expired",
    });
    await rt.close();
    project.cleanup();
  });
});

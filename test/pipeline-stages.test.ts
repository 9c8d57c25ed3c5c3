/** The transition table, exhaustively, and random op sequences (fast-check) against the real ops. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { manualClock } from "../core/clock.ts";
import { DroverError } from "../core/errors.ts";
import type { Item } from "../features/pipeline/item.ts";
import { checkMove, isLegalMove, STAGES, type Stage, TRANSITIONS } from "../features/pipeline/stages.ts";
import { tempProject, testRuntime } from "./helpers.ts";

// SPEC §5's table, written out again on purpose: the test must not derive its answers from the code it checks
const LEGAL: Record<Stage, Stage[]> = {
  backlog: ["coding", "blocked", "abandoned"],
  coding: ["qa", "merge", "backlog", "blocked", "abandoned"],
  qa: ["merge", "coding", "backlog", "blocked", "abandoned"],
  merge: ["done", "coding", "qa", "blocked", "abandoned"],
  blocked: ["backlog", "coding", "qa", "merge", "abandoned"],
  done: ["archived", "coding"],
  abandoned: ["backlog"],
  archived: [],
};

describe("transition table", () => {
  for (const from of STAGES) {
    for (const to of STAGES) {
      const legal = LEGAL[from].includes(to);
      test(`${from} → ${to} is ${legal ? "legal" : "refused"}`, () => {
        expect(isLegalMove(from, to)).toBe(legal);
        if (legal) expect(() => checkMove("abcde", from, to)).not.toThrow();
        else {
          try {
            checkMove("abcde", from, to);
            throw new Error("expected a refusal");
          } catch (err) {
            expect(err).toBeInstanceOf(DroverError);
            expect((err as DroverError).code).toBe("illegal_transition");
            expect((err as DroverError).details).toEqual({ from, to, legal: [...TRANSITIONS[from]] });
          }
        }
      });
    }
  }
});

describe("random op sequences", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  beforeAll(async () => (project = await tempProject()));
  afterAll(() => project.cleanup());

  test("never leave an item where it could not get to; fences only grow; one unexpired claim at most", async () => {
    const clock = manualClock("2026-02-01T00:00:00Z");
    const { rt } = await testRuntime(project.paths, { clock });
    const agents = ["a1", "a2", "a3"];
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("move" as const),
        item: fc.nat(3),
        to: fc.constantFrom(...STAGES),
        force: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant("claim" as const),
        item: fc.nat(3),
        agent: fc.constantFrom(...agents),
        ttl: fc.integer({ min: 1, max: 30 }),
      }),
      fc.record({
        kind: fc.constant("release" as const),
        item: fc.nat(3),
        agent: fc.constantFrom(...agents),
        stale: fc.boolean(),
      }),
      fc.record({ kind: fc.constant("next" as const), agent: fc.constantFrom(...agents) }),
      fc.record({ kind: fc.constant("time" as const), secs: fc.integer({ min: 1, max: 40 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) ids.push(((await rt.ops.run("item.create", { title: `t${i}` })) as Item).id);
        const model = new Map<string, { stage: Stage; fence: number }>(
          ids.map((id) => [id, { stage: "backlog", fence: 0 }]),
        );
        for (const o of ops) {
          if (o.kind === "time") {
            clock.advance(o.secs * 1000);
            await rt.tick();
            continue;
          }
          const id = ids[(o as { item?: number }).item ?? 0]!;
          const before = (await rt.ops.run("item.get", { id })) as Item;
          const heldBefore = new Map<string, boolean>();
          for (const each of ids) {
            const it = (await rt.ops.run("item.get", { id: each })) as Item;
            heldBefore.set(each, it.claim !== null && Date.parse(it.claim.expires_at) > clock.now());
          }
          try {
            if (o.kind === "move") await rt.ops.run("item.move", { id, to: o.to, force: o.force });
            if (o.kind === "claim") await rt.ops.run("item.claim", { id, agent: o.agent, ttl_secs: o.ttl });
            if (o.kind === "release")
              await rt.ops.run("item.release", {
                id,
                agent: o.agent,
                fence: Math.max(0, before.fence - (o.stale ? 1 : 0)),
              });
            if (o.kind === "next") await rt.ops.run("item.next", { agent: o.agent });
          } catch (err) {
            if (!(err instanceof DroverError) || err.status !== 409) throw err;
          }
          for (const each of ids) {
            const item = (await rt.ops.run("item.get", { id: each })) as Item;
            const was = model.get(each)!;
            if (item.stage !== was.stage) expect(TRANSITIONS[was.stage]).toContain(item.stage);
            expect(item.fence).toBeGreaterThanOrEqual(was.fence);
            if (item.claim) expect(item.claim.fence).toBe(item.fence);
            // a new grant (the fence moved) never lands on an item whose claim was still held
            if (item.fence > was.fence) expect(heldBefore.get(each)).toBe(false);
            model.set(each, { stage: item.stage, fence: item.fence });
          }
        }
      }),
      { numRuns: 25 },
    );
    await rt.close();
  }, 120_000);
});

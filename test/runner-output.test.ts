/**
 * What a run's output says, read from lines the real CLIs print (Claude Code 2.1.332 stream-json, Codex 0.171.0
 * `--json`, recorded against scripted APIs): usage, and a rate limit with its reset time — or none, where the
 * text only looks like one.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { usageOps } from "../features/pipeline/usage.ts";
import { createOutputReader } from "../features/runners/output.ts";
import { hostileRuns } from "./helpers.ts";

const NOW = Date.UTC(2026, 10, 29, 21, 0);
const read = (...lines: unknown[]) => {
  const reader = createOutputReader(() => NOW);
  for (const l of lines) reader.line(typeof l === "string" ? l : JSON.stringify(l));
  return reader;
};

describe("Claude Code", () => {
  test("usage from the last result line: input with cache writes, cache reads, cost, the model", () => {
    const r = read(
      { type: "assistant", message: { usage: { input_tokens: 1, output_tokens: 1 } } },
      {
        type: "result",
        subtype: "success",
        is_error: false,
        usage: {
          input_tokens: 1234,
          output_tokens: 567,
          cache_read_input_tokens: 30000,
          cache_creation_input_tokens: 2000,
        },
        total_cost_usd: 0.032276,
        modelUsage: { "claude-opus-5-5": { inputTokens: 1234 } },
      },
    );
    expect(r.usage()).toEqual({
      input_tokens: 3234,
      output_tokens: 567,
      cache_read_tokens: 30000,
      cost_usd: 0.032276,
      model: "claude-opus-5-5",
    });
    expect(r.rateLimit()).toBeNull();
  });

  test("a subscription's limit: rate_limit_event rejected, with its reset", () => {
    const r = read(
      { type: "rate_limit_event", rate_limit_info: { status: "allowed", resetsAt: 1795992538 } },
      {
        type: "rate_limit_event",
        rate_limit_info: { status: "rejected", resetsAt: 1795997157, rateLimitType: "five_hour" },
      },
      {
        type: "result",
        subtype: "success",
        is_error: true,
        api_error: "usage_limit_reached",
        result: "You've hit your 5-hour limit · resets 12:05am (UTC)",
      },
    );
    expect(r.rateLimit()).toMatchObject({ resetsAt: 1795997157_000 });
  });

  test("an API key's 429: a limit without a reset (drover backs off)", () => {
    const r = read({
      type: "result",
      subtype: "success",
      is_error: true,
      api_error_status: 429,
      result: "API Error: Request rejected (429) · Number of request tokens has exceeded your rate limit",
    });
    expect(r.rateLimit()).toMatchObject({ resetsAt: null });
  });

  test("an agent's own words about rate limits are no limit", () => {
    const r = read(
      "Implementing the rate limit middleware: 429 Too Many Requests after 100 calls",
      { type: "result", subtype: "success", is_error: false, result: "Added a rate limit (usage limit reached → 429)" },
      { type: "result", subtype: "error_max_turns", is_error: true, result: "Stopped while testing the rate limit" },
    );
    expect(r.rateLimit()).toBeNull();
  });
});

describe("Codex", () => {
  test("usage summed over turn.completed lines; cached tokens are inside input_tokens", () => {
    const turn = { input_tokens: 5000, cached_input_tokens: 4000, cache_write_input_tokens: 500, output_tokens: 300 };
    const r = read({ type: "turn.completed", usage: turn }, { type: "turn.completed", usage: turn });
    expect(r.usage()).toEqual({
      input_tokens: 2000,
      output_tokens: 600,
      cache_read_tokens: 8000,
      cost_usd: 0,
      model: null,
    });
  });

  test("a usage limit: the reset from 'try again at', today or on the date given (UTC)", () => {
    const text = (at: string) =>
      `You’ve hit your usage limit. Visit https://chatgpt.com/settings/usage to purchase more credits or try again at ${at}.`;
    const failed = (at: string) => [
      { type: "error", message: text(at) },
      { type: "turn.failed", error: { message: text(at) } },
    ];
    expect(read(...failed("11:49 PM")).rateLimit()?.resetsAt).toBe(Date.UTC(2026, 10, 29, 23, 49));
    expect(read(...failed("8:05 AM")).rateLimit()?.resetsAt).toBe(Date.UTC(2026, 10, 30, 8, 5)); // past today: tomorrow
    expect(read(...failed("Nov 30th, 2026 2:50 AM")).rateLimit()?.resetsAt).toBe(Date.UTC(2026, 10, 30, 2, 50));
  });

  test("a plain 429 after retries is a limit without a reset; retries that recovered are none", () => {
    const retry = {
      type: "error",
      message: "Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)",
    };
    const failed = {
      type: "turn.failed",
      error: { message: "exceeded retry limit, last status: 429 Too Many Requests" },
    };
    expect(read(retry, failed).rateLimit()).toMatchObject({ resetsAt: null });
    expect(
      read(retry, { type: "turn.completed", usage: { input_tokens: 1, output_tokens: 1 } }).rateLimit(),
    ).toBeNull();
  });
});

describe("any output (an agent prints what it likes)", () => {
  test("generated lines: never a throw; usage.report takes the usage as it is; a reset is a time or null", () => {
    const number = fc.oneof(
      fc.double(),
      fc.integer(),
      fc.constantFrom(-1, 1e308, Number.NaN),
      fc.string(),
      fc.constant(null),
    );
    const fields = fc.record(
      {
        type: fc.constantFrom("result", "rate_limit_event", "turn.completed", "turn.failed", "error", "system"),
        usage: fc.oneof(
          fc.record({
            input_tokens: number,
            output_tokens: number,
            cache_read_input_tokens: number,
            cached_input_tokens: number,
          }),
          fc.anything(),
        ),
        total_cost_usd: number,
        modelUsage: fc.oneof(
          fc.dictionary(fc.oneof(fc.string(), fc.string({ minLength: 95, maxLength: 400 })), fc.anything()),
          fc.anything(),
        ),
        is_error: fc.anything(),
        api_error_status: fc.oneof(fc.constant(429), fc.anything()),
        result: fc.oneof(fc.string(), fc.anything()),
        rate_limit_info: fc.oneof(
          fc.record({ status: fc.constantFrom("rejected", "allowed"), resetsAt: number }),
          fc.anything(),
        ),
        error: fc.oneof(fc.record({ message: fc.string() }), fc.anything()),
      },
      { requiredKeys: [] },
    );
    const line = fc.oneof(
      fields.map((f) => JSON.stringify(f)),
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.constantFrom(
        "{",
        "{}",
        "null",
        "[]",
        '{"type":"result","usage":null}',
        '{"type":"turn.completed","usage":{"input_tokens":1e308,"output_tokens":0.5}}',
        "x".repeat(100_000),
      ),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), (lines) => {
        const r = read(...lines);
        const usage = r.usage();
        if (usage) {
          // as the run's ending reports it: a refusal would lose the run's tokens and cost
          const { model, ...counts } = usage;
          const report = { agent: "scripted-vm-1", item: "k7q2m", model: model ?? undefined, ...counts };
          expect(usageOps["usage.report"].input.safeParse(report).error).toBeUndefined();
        }
        const limit = r.rateLimit();
        if (limit) expect(limit.resetsAt === null || Number.isFinite(limit.resetsAt)).toBe(true);
      }),
      { numRuns: hostileRuns(300) },
    );
  });
});

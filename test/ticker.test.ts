import { afterEach, describe, expect, jest, test } from "bun:test";
import { createLogger } from "../core/logger.ts";
import { createTicker } from "../core/ticker.ts";

const log = createLogger("t", { write: () => undefined });

afterEach(() => jest.useRealTimers());

describe("ticker", () => {
  test("fires on whole seconds", async () => {
    jest.useFakeTimers({ now: Date.parse("2026-01-01T00:00:00.400Z") });
    const at: number[] = [];
    const t = createTicker(() => void at.push(Date.now() % 1000), { log });
    t.start();
    jest.advanceTimersByTime(3000);
    t.stop();
    expect(at).toEqual([0, 0, 0]);
    expect(t.stats.ticks).toBe(3);
  });

  test("a slow tick is never overlapped: the next one is counted as skipped", async () => {
    jest.useFakeTimers({ now: 0 });
    let finish!: () => void;
    let calls = 0;
    const t = createTicker(
      () => {
        calls++;
        return new Promise<void>((r) => (finish = r));
      },
      { log },
    );
    t.start();
    jest.advanceTimersByTime(3000);
    expect(calls).toBe(1);
    expect(t.stats.skipped).toBe(2);
    finish();
    await Promise.resolve();
    await Promise.resolve();
    jest.advanceTimersByTime(1000);
    expect(calls).toBe(2);
    t.stop();
  });

  test("a throwing tick is counted and the ticker keeps going", async () => {
    jest.useFakeTimers({ now: 0 });
    let n = 0;
    const t = createTicker(
      () => {
        n++;
        throw new Error("tick failed");
      },
      { log },
    );
    t.start();
    for (let i = 0; i < 3; i++) {
      jest.advanceTimersByTime(1000);
      await Promise.resolve();
    }
    t.stop();
    expect(n).toBe(3);
    expect(t.stats.errors).toBe(3);
  });
});

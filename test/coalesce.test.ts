/** core/coalesce.ts, the job behind auto-assign and the runners' fills: bursts of requests make one run. */
import { expect, test } from "bun:test";
import { coalesce } from "../core/coalesce.ts";
import { until } from "./helpers.ts";

test("requests in a burst make one run; one during a run makes one more pass; a call while running joins it", async () => {
  let passes = 0;
  let gate: (() => void) | null = null;
  const errors: string[] = [];
  const job = coalesce(
    async () => {
      passes++;
      if (passes === 3) throw new Error("third pass failed");
      await new Promise<void>((r) => (gate = r));
      return 1;
    },
    { delayMs: 5, onError: (err) => errors.push(err.message) },
  );
  for (let i = 0; i < 10; i++) job.request();
  await until(() => gate !== null);
  expect(passes).toBe(1);
  const joined = job.run(); // joins the running one: it makes one more pass
  job.request();
  job.request();
  gate!();
  gate = null;
  await until(() => gate !== null);
  expect(passes).toBe(2);
  gate!();
  expect(await joined).toBe(2);
  // a pass that throws is reported, and the job keeps working
  expect(await job.run()).toBe(0);
  expect(errors).toEqual(["third pass failed"]);
});

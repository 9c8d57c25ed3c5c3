/**
 * Timer and trigger rows: the timers tick with 100,000 stored timers none of which is due; lateness of 1,000
 * real firings through the compiled daemon (timer_fired.late_ms on a WebSocket); matching one event against
 * 1,000 triggers.
 */
import { iso } from "../core/clock.ts";
import type { Paths } from "../core/paths.ts";
import timers from "../features/timers/index.ts";
import { openRuntime } from "../runtime.ts";
import { median, percentile, type Row, round, startBinary } from "./lib.ts";

export async function timerRows(paths: Paths, options: { quick: boolean }): Promise<Row[]> {
  return [
    await tickRow(paths, options.quick ? 20_000 : 100_000),
    await matchRow(paths),
    await latenessRow(paths, options.quick ? 200 : 1000),
  ];
}

async function tickRow(paths: Paths, n: number): Promise<Row> {
  const rt = await openRuntime({ paths, mode: "daemon" });
  const far = Date.now() + 86_400_000;
  const insert = rt.ctx.db.query(
    "INSERT INTO timers (id, label, schedule, action, catchup, next_fire_at, state, created_at) VALUES (?, NULL, ?, ?, 'one', ?, 'active', ?)",
  );
  rt.ctx.db.transaction(() => {
    for (let i = 0; i < n; i++) {
      insert.run(
        `tm${String(i).padStart(8, "a")}`,
        JSON.stringify({ kind: "at", at: far + i }),
        JSON.stringify({ op: "items.list", args: {} }),
        far + i,
        iso(Date.now()),
      );
    }
  })();
  const times: number[] = [];
  for (let i = 0; i < 300; i++) {
    const started = performance.now();
    await timers.tick!(rt.ctx);
    times.push(performance.now() - started);
  }
  await rt.close();
  const ms = round(median(times), 3);
  return {
    row: `timers tick, ${n} stored, none due`,
    value: ms,
    unit: "ms",
    bar: "< 2 ms",
    pass: ms < 2,
    detail: `p99 ${round(percentile(times, 99), 3)} ms`,
  };
}

async function matchRow(paths: Paths): Promise<Row> {
  const rt = await openRuntime({ paths, mode: "cli" });
  for (let i = 0; i < 1000; i++) {
    await rt.ops.run("trigger.add", {
      on: { to: ["qa", "merge"][i % 2], item: `z${i}*`, agent: "bot-*" },
      mode: "persistent",
      op: "items.list",
      args: {},
    });
  }
  const event = { type: "transition", item_id: "abcde", from: "coding", to: "qa", agent_id: "bot-1" };
  const times: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const started = performance.now();
    await rt.ctx.services.triggers.match(event, async () => null);
    times.push(performance.now() - started);
  }
  await rt.close();
  const ms = round(median(times), 3);
  return {
    row: "trigger matching, 1000 triggers, one event",
    value: ms,
    unit: "ms",
    bar: "(reported)",
    pass: true,
    detail: `p99 ${round(percentile(times, 99), 3)} ms`,
  };
}

async function latenessRow(paths: Paths, n: number): Promise<Row> {
  await Bun.write(paths.config, '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n');
  const { proc, url } = await startBinary(paths);
  const token = (await Bun.file(paths.token).text()).trim();
  const late: number[] = [];
  const ws = new WebSocket(url.replace("http", "ws") + "/ws?token=" + token);
  ws.onmessage = (m) => {
    const f = JSON.parse(String(m.data));
    if (f.type === "timer_fired") late.push(f.late_ms);
  };
  await new Promise((r) => (ws.onopen = r));
  const start = Date.now() + 2000;
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) =>
        fetch(url + "/api/timers", {
          method: "POST",
          headers,
          body: JSON.stringify({ at: iso(start + (i + j) * 7), op: "items.list", args: {} }),
        }),
      ),
    );
  }
  const deadline = Date.now() + 60_000;
  while (late.length < n && Date.now() < deadline) await Bun.sleep(50);
  ws.close();
  proc.kill("SIGTERM");
  await proc.exited;
  const p99 = round(percentile(late, 99));
  return {
    row: `timer lateness over ${late.length} firings (p99)`,
    value: p99,
    unit: "ms",
    bar: "p99 < 1100 ms",
    pass: late.length === n && p99 < 1100,
    detail: `p50 ${round(median(late))} ms`,
  };
}

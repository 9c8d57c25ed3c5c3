/**
 * Heartbeat rows: a heartbeat file written by hand (atomic rename, as any writer does) → the `heartbeat`
 * frame on a WebSocket client of the compiled daemon; and a status change caused by time alone → its
 * `agent_status` frame, measured against the exact threshold.
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Paths } from "../core/paths.ts";
import { median, percentile, type Row, round, startBinary } from "./lib.ts";

export async function heartbeatRows(paths: Paths, options: { quick: boolean }): Promise<Row[]> {
  await Bun.write(paths.config, '[hub]\nremote = ""\n[heartbeats]\nidle_after_secs = 2\nstale_after_secs = 3600\n');
  const { proc, url } = await startBinary(paths);
  const token = (await Bun.file(paths.token).text()).trim();
  const ws = new WebSocket(url.replace("http", "ws") + "/ws?token=" + token);
  const arrivals = new Map<string, number>();
  ws.onmessage = (m) => {
    const f = JSON.parse(String(m.data));
    if (f.type === "heartbeat") arrivals.set(`hb:${f.agent_id}:${f.last_heartbeat}`, performance.now());
    if (f.type === "agent_status" && f.status === "idle") arrivals.set(`idle:${f.agent_id}`, Date.now());
  };
  await new Promise((r) => (ws.onopen = r));

  const dir = join(paths.hub, "heartbeats");
  const write = (agent: string, at: string) => {
    const file = join(dir, `${agent}.json`);
    writeFileSync(
      file + ".tmp",
      JSON.stringify({
        agent_id: agent,
        machine_id: "bench",
        last_heartbeat: at,
        active_item_id: null,
        state: "working",
      }),
    );
    renameSync(file + ".tmp", file);
  };

  const latencies: number[] = [];
  for (let i = 0; i < (options.quick ? 50 : 300); i++) {
    const agent = `beat-${i % 20}`;
    const at = new Date(Date.now() + i).toISOString();
    const key = `hb:${agent}:${at}`;
    const started = performance.now();
    write(agent, at);
    while (!arrivals.has(key)) await Bun.sleep(0.2);
    latencies.push(arrivals.get(key)! - started);
  }

  const lateness: number[] = [];
  for (let i = 0; i < (options.quick ? 2 : 5); i++) {
    const agent = `timed-${i}`;
    const last = Date.now() - 200 - Math.random() * 600;
    write(agent, new Date(last).toISOString());
    const threshold = last + 2000;
    while (!arrivals.has(`idle:${agent}`)) await Bun.sleep(5);
    lateness.push(arrivals.get(`idle:${agent}`)! - threshold);
  }
  ws.close();
  proc.kill("SIGTERM");
  await proc.exited;

  const p50 = round(median(latencies));
  const p99 = round(percentile(latencies, 99));
  const late = round(median(lateness));
  const worst = round(Math.max(...lateness));
  return [
    {
      row: "heartbeat file written → heartbeat on a WS client (p99)",
      value: p99,
      unit: "ms",
      bar: "p99 < 50 ms",
      pass: p99 < 50,
      detail: `p50 ${p50} ms, n=${latencies.length}`,
    },
    {
      row: "status change by time alone → agent_status (lateness)",
      value: late,
      unit: "ms",
      bar: "≤ 1500 ms",
      pass: worst <= 1500,
      detail: `worst ${worst} ms of ${lateness.length}`,
    },
  ];
}

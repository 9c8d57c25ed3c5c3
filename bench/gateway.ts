/**
 * Gateway row: 10 projects' relays send events as fast as they can; the gateway relays each one to 100
 * WebSocket readers. Reports events per second received by the readers (events × readers / time).
 */
import { createLogger } from "../core/logger.ts";
import { PROJECT_HEADER } from "../features/gateway/frames.ts";
import { startGateway } from "../features/gateway/server.ts";
import { type Row, round } from "./lib.ts";

export async function gatewayRow(options: { quick: boolean }): Promise<Row> {
  const projects = Array.from({ length: 10 }, (_, i) => ({ name: `p${i}`, token: `project-token-${i}-0123456789` }));
  const gw = startGateway(
    { token: "reader-token-0123456789", project: projects },
    { host: "127.0.0.1", port: 0, log: createLogger("bench", { level: "error" }) },
  );
  const ws = gw.url.replace("http", "ws");
  const perRelay = options.quick ? 200 : 1000;
  const total = perRelay * projects.length;
  let received = 0;
  const readers = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const r = new WebSocket(`${ws}/ws?token=reader-token-0123456789`);
      r.onmessage = () => void received++;
      await new Promise((ok) => (r.onopen = ok));
      return r;
    }),
  );
  const relays = await Promise.all(
    projects.map(async (p) => {
      const r = new WebSocket(`${ws}/relay`, {
        headers: { authorization: `Bearer ${p.token}`, [PROJECT_HEADER]: p.name },
      } as never);
      await new Promise((ok) => (r.onopen = ok));
      r.send(JSON.stringify({ type: "hello", project: p.name, machine_id: "bench", version: "bench" }));
      return r;
    }),
  );
  const started = performance.now();
  for (let i = 0; i < perRelay; i++) {
    for (const r of relays) {
      r.send(
        JSON.stringify({
          type: "event",
          event: {
            type: "heartbeat",
            at: new Date().toISOString(),
            agent_id: `a${i % 50}`,
            machine_id: "bench",
            last_heartbeat: "x",
            active_item_id: null,
            state: "working",
            clock_skew: false,
          },
        }),
      );
    }
    if (i % 50 === 0) await Bun.sleep(0);
  }
  const want = total * readers.length;
  const deadline = Date.now() + 60_000;
  while (received < want && Date.now() < deadline) await Bun.sleep(10);
  const seconds = (performance.now() - started) / 1000;
  for (const r of [...readers, ...relays]) r.close();
  await gw.stop();
  const rate = Math.round(received / seconds);
  return {
    row: "gateway: events to 100 readers from 10 projects",
    value: rate,
    unit: "deliveries/s",
    bar: "(reported)",
    pass: received === want,
    detail: `${round(total / seconds)} events/s in, ${received}/${want} delivered`,
  };
}

/**
 * WebSocket fan-out row: one event to 1,000 clients of the compiled daemon, delivery time to each client (p99),
 * beside a bare `Bun.serve` broadcast to 1,000 clients as the floor.
 */
import type { Paths } from "../core/paths.ts";
import { median, percentile, type Row, round, startBinary } from "./lib.ts";

const CLIENTS = 1000;

export async function websocketRow(paths: Paths, options: { quick: boolean }): Promise<Row> {
  const { proc, url } = await startBinary(paths);
  const token = (await Bun.file(paths.token).text()).trim();
  const rounds = options.quick ? 3 : 10;
  const drover = await measure(
    `${url.replace("http", "ws")}/ws?token=${token}`,
    rounds,
    async (i) => {
      await fetch(`${url}/api/agents/fanout-${i}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: "{}",
      });
    },
    (f) => f.type === "heartbeat",
  );
  proc.kill("SIGTERM");
  await proc.exited;

  const bare = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no")),
    websocket: { open: (ws) => void ws.subscribe("all"), message() {} },
  });
  const floor = await measure(
    `ws://127.0.0.1:${bare.port}`,
    rounds,
    async (i) => void bare.publish("all", JSON.stringify({ type: "heartbeat", i })),
    () => true,
  );
  await bare.stop(true);

  const p99 = round(median(drover));
  return {
    row: `1000 WS clients, one event (p99 delivery)`,
    value: p99,
    unit: "ms",
    bar: "p99 < 100 ms",
    pass: p99 < 100,
    detail: `bare Bun.serve broadcast floor: p99 ${round(median(floor))} ms`,
  };
}

/** For each round: fires one event and returns the p99, over all clients, of send → receive. */
async function measure(
  wsUrl: string,
  rounds: number,
  fire: (i: number) => Promise<void>,
  matches: (f: any) => boolean,
): Promise<number[]> {
  let started = 0;
  let got: number[] = [];
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const ws = new WebSocket(wsUrl);
      ws.onmessage = (m) => {
        if (matches(JSON.parse(String(m.data)))) got.push(performance.now() - started);
      };
      await new Promise((ok, fail) => {
        ws.onopen = ok;
        ws.onerror = fail;
      });
      return ws;
    }),
  );
  const p99s: number[] = [];
  for (let i = 0; i < rounds; i++) {
    got = [];
    started = performance.now();
    await fire(i);
    const deadline = Date.now() + 10_000;
    while (got.length < CLIENTS && Date.now() < deadline) await Bun.sleep(1);
    p99s.push(got.length === CLIENTS ? percentile(got, 99) : Infinity);
    await Bun.sleep(50);
  }
  for (const ws of clients) ws.close();
  return p99s;
}

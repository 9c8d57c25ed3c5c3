/** Crash safety with the compiled daemon and kill -9: nothing fired twice. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { api, BINARY, type DaemonProc, run, startDaemonProcess, tempProject } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
let requests: string[] = [];
let onRequest: () => void = () => undefined;
let server: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      requests.push(new URL(req.url).pathname);
      await req.text();
      onRequest();
      return new Promise<Response>(() => undefined); // hangs: the action is still running when the daemon dies
    },
  });
});
afterAll(() => server.stop(true));
afterEach(async () => {
  daemon.proc.kill("SIGKILL");
  await daemon.proc.exited;
  project.cleanup();
});

async function killedWhenCalled(): Promise<void> {
  await new Promise<void>((resolve) => {
    onRequest = () => {
      daemon.proc.kill("SIGKILL");
      resolve();
    };
  });
  await daemon.proc.exited;
  onRequest = () => undefined;
}

describe("crash safety (kill -9)", () => {
  test("an occurrence whose webhook was running is reported timer_interrupted after restart and not fired again", async () => {
    requests = [];
    project = await tempProject();
    daemon = await startDaemonProcess([BINARY], project.paths);
    const killed = killedWhenCalled();
    const add = await run(
      [BINARY, "timer", "add", "--label", "hook", "--in", "1s", "--webhook", `http://127.0.0.1:${server.port}/timer`],
      project.dir,
    );
    expect(add.code).toBe(0);
    await killed;
    daemon = await startDaemonProcess([BINARY], project.paths, { DROVER_LOG: "warn" });
    const reader = (daemon.proc.stderr as ReadableStream<Uint8Array>).getReader();
    let log = "";
    while (!log.includes("was interrupted")) {
      const { value, done } = await reader.read();
      if (done) break;
      log += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    expect(log).toMatch(/Timer "tm[a-z2-7]{8}" was interrupted/);
    await Bun.sleep(2500); // two more ticks: nothing fires again
    expect(requests).toEqual(["/timer"]);
    const timers = (await api(daemon.url, daemon.token, "/api/timers?all=true")).body;
    expect(timers).toEqual([
      expect.objectContaining({ label: "hook", state: "done", fired_count: 1, last_result: "interrupted" }),
    ]);
  }, 30_000);

  test("a once trigger whose action takes the daemon down does not fire again after restart", async () => {
    requests = [];
    project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
    daemon = await startDaemonProcess([BINARY], project.paths);
    const t = await api(daemon.url, daemon.token, "/api/triggers", {
      on: { to: "qa" },
      mode: "once",
      webhook: `http://127.0.0.1:${server.port}/trigger`,
    });
    expect(t.status).toBe(201);
    const a = (await api(daemon.url, daemon.token, "/api/items", { title: "a" })).body;
    await api(daemon.url, daemon.token, `/api/items/${a.id}/move`, { to: "coding" });
    const killed = killedWhenCalled();
    await api(daemon.url, daemon.token, `/api/items/${a.id}/move`, { to: "qa" });
    await killed;
    daemon = await startDaemonProcess([BINARY], project.paths);
    const b = (await api(daemon.url, daemon.token, "/api/items", { title: "b" })).body;
    await api(daemon.url, daemon.token, `/api/items/${b.id}/move`, { to: "coding" });
    await api(daemon.url, daemon.token, `/api/items/${b.id}/move`, { to: "qa" });
    await Bun.sleep(500);
    expect(requests).toEqual(["/trigger"]);
    expect((await api(daemon.url, daemon.token, "/api/triggers?all=true")).body).toEqual([
      expect.objectContaining({ id: t.body.id, state: "fired", fired_count: 1 }),
    ]);
  }, 30_000);
});

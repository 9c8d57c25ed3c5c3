/**
 * Idempotency keys (SPEC §12): every mutating op takes one — HTTP `Idempotency-Key`, MCP and CLI
 * `idempotency_key` — and a retry within 24 h answers the first outcome without running again. A client whose
 * connection broke, whose daemon was killed mid-op, or who got a 5xx (a full disk answered 500 after the item was
 * made, and the retry made it twice) can always retry safely.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { manualClock } from "../core/clock.ts";
import {
  api,
  BUN,
  CLI,
  cli,
  type DaemonProc,
  freePort,
  startDaemonProcess,
  tempProject,
  testRuntime,
  waitHealthy,
} from "./helpers.ts";

async function post(url: string, token: string, path: string, body: unknown, key?: string) {
  const res = await fetch(url + path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      ...(key ? { "idempotency-key": key } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe("one key, one effect, on every front door", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  let daemon: DaemonProc;
  beforeAll(async () => {
    project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nworktrees = false\n' });
    daemon = await startDaemonProcess([BUN, CLI], project.paths);
  });
  afterAll(async () => {
    await daemon.stop();
    project.cleanup();
  });

  const titled = async (title: string) =>
    ((await api(daemon.url, daemon.token, "/api/items")).body as Array<{ title: string }>).filter(
      (i) => i.title === title,
    );

  test("HTTP: the same Idempotency-Key answers the first result, on op routes and REST routes alike", async () => {
    const first = await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "once over http" }, "k-http-1");
    const again = await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "once over http" }, "k-http-1");
    const rest = await post(daemon.url, daemon.token, "/api/items", { title: "once over http" }, "k-http-1");
    expect(again.body).toEqual(first.body);
    expect(rest.body).toEqual(first.body);
    expect(await titled("once over http")).toHaveLength(1);
    // without a key, two calls are two items
    await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "twice" });
    await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "twice" });
    expect(await titled("twice")).toHaveLength(2);
  });

  test("MCP and the CLI: the field idempotency_key does the same", async () => {
    const client = new Client({ name: "t", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(daemon.url + "/mcp"), {
        requestInit: { headers: { authorization: `Bearer ${daemon.token}` } },
      }),
    );
    const tools = await client.listTools();
    expect(
      (tools.tools.find((t) => t.name === "item.create")!.inputSchema.properties as Record<string, unknown>)
        .idempotency_key,
    ).toBeDefined();
    expect(
      (tools.tools.find((t) => t.name === "items.list")!.inputSchema.properties as Record<string, unknown>)
        .idempotency_key,
    ).toBeUndefined();
    const call = () =>
      client.callTool({
        name: "item.create",
        arguments: { title: "once over mcp", idempotency_key: "k-mcp" },
      }) as Promise<{ content: Array<{ text: string }> }>;
    expect((await call()).content[0]!.text).toBe((await call()).content[0]!.text);
    await client.close();
    const run = () =>
      cli(["item", "create", "--title", "once from the cli", "--idempotency_key", "k-cli", "--json"], project.dir);
    expect(JSON.parse((await run()).stdout)).toEqual(JSON.parse((await run()).stdout));
    expect(await titled("once over mcp")).toHaveLength(1);
    expect(await titled("once from the cli")).toHaveLength(1);
  });

  test("a key used for another request is refused; a refusal is answered again as a refusal; read ops take none", async () => {
    await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "a" }, "k-reuse");
    const other = await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "b" }, "k-reuse");
    expect(other.status).toBe(409);
    expect(other.body.error.message).toBe(
      'Cannot use idempotency key "k-reuse" again: it was used for another request (op "item.create")',
    );
    const item = (await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "held" })).body;
    await post(daemon.url, daemon.token, "/api/ops/item.claim", { id: item.id, agent: "holder" });
    const refused = await post(
      daemon.url,
      daemon.token,
      "/api/ops/item.claim",
      { id: item.id, agent: "other" },
      "k-refused",
    );
    await post(daemon.url, daemon.token, "/api/ops/item.release", { id: item.id, agent: "holder", fence: 1 });
    const retried = await post(
      daemon.url,
      daemon.token,
      "/api/ops/item.claim",
      { id: item.id, agent: "other" },
      "k-refused",
    );
    expect([refused.status, retried.status]).toEqual([409, 409]);
    expect(retried.body).toEqual(refused.body);
    expect((await post(daemon.url, daemon.token, "/api/ops/items.list", { idempotency_key: "x" })).status).toBe(400);
    expect(
      (await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "x" }, "bad key with spaces")).status,
    ).toBe(400);
  });

  test("an op that runs ops (item.start: claim, move) answers its retry without a second claim", async () => {
    const item = (await post(daemon.url, daemon.token, "/api/ops/item.create", { title: "start me" })).body;
    const first = await post(daemon.url, daemon.token, "/api/ops/item.start", { id: item.id, agent: "a" }, "k-start");
    const again = await post(daemon.url, daemon.token, "/api/ops/item.start", { id: item.id, agent: "a" }, "k-start");
    expect(again.body).toEqual(first.body);
    expect((await api(daemon.url, daemon.token, `/api/items/${item.id}`)).body.fence).toBe(1);
  });
});

test("keys are remembered for 24 hours", async () => {
  const project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  const clock = manualClock("2026-03-01T00:00:00Z");
  const { rt } = await testRuntime(project.paths, { clock });
  try {
    const make = () =>
      rt.ops.run("item.create", { title: "daily", idempotency_key: "k-day" }, { via: "http" }) as Promise<{
        id: string;
      }>;
    const first = await make();
    clock.advance(23 * 3600_000);
    expect((await make()).id).toBe(first.id);
    clock.advance(2 * 3600_000);
    await rt.ops.run("item.create", { title: "another", idempotency_key: "k-other" }); // a write prunes what expired
    expect((await make()).id).not.toBe(first.id);
  } finally {
    await rt.close();
    project.cleanup();
  }
});

describe("retries after the answer was lost", () => {
  test("kill -9 of the daemon mid-request: every request retried with its key until answered leaves exactly one item per key", async () => {
    const project = await tempProject({
      config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nworktrees = false\n',
    });
    const port = await freePort();
    let daemon = await startDaemonProcess([BUN, CLI], project.paths, {}, port);
    const answered = new Map<string, string>();
    try {
      const send = async (i: number) => {
        for (;;) {
          const r = await post(
            daemon.url,
            daemon.token,
            "/api/ops/item.create",
            { title: `keyed ${i}` },
            `k-kill-${i}`,
          ).catch(() => null);
          if (r?.status === 200) return void answered.set(`keyed ${i}`, r.body.id);
          await Bun.sleep(50);
        }
      };
      const all = Promise.all(Array.from({ length: 60 }, (_, i) => Bun.sleep(i * 15).then(() => send(i))));
      for (let kill = 0; kill < 4; kill++) {
        await Bun.sleep(150 + kill * 60);
        daemon.proc.kill("SIGKILL");
        await daemon.proc.exited;
        daemon = await startDaemonProcess([BUN, CLI], project.paths, {}, port);
      }
      await all;
      const items = (await api(daemon.url, daemon.token, "/api/items")).body as Array<{ id: string; title: string }>;
      expect(items).toHaveLength(60);
      for (const item of items) expect(answered.get(item.title)).toBe(item.id);
    } finally {
      await daemon.stop();
      project.cleanup();
    }
  }, 60_000);

  test("a full disk (ENOSPC on a 3 MiB tmpfs): 5xx answers, then retries with their keys once space is back — no item twice", async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-enospc-")));
    const port = await freePort();
    // the project lives on a small tmpfs in a mount namespace of its own (unshare: as root a mount namespace is
    // enough; otherwise a user namespace gives the right to mount; nothing leaks either way)
    const script = [
      'mount -t tmpfs -o size=3m tmpfs "$1"',
      'cd "$1" && git init -q . && "$2" "$3" init --local >/dev/null',
      'printf "[pipeline]\\nauto_assign = false\\nworktrees = false\\n" >> .drover/config.toml',
      "head -c 1200000 /dev/zero > ballast",
      'exec "$2" "$3" serve --port "$4"',
    ].join(" && ");
    const flags = process.getuid?.() === 0 ? "-m" : "-Urm";
    const proc = spawn("unshare", [flags, "sh", "-c", script, "sh", dir, BUN, CLI, String(port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitHealthy(url, () => proc.exitCode === null);
      const inside = `/proc/${proc.pid}/root${dir}`; // the daemon's view of the tmpfs
      await Bun.sleep(100);
      const token = execFileSync("cat", [`${inside}/.drover/token`], { encoding: "utf8" }).trim();
      const body = "z".repeat(60_000);
      const outcomes: number[] = [];
      let i = 0;
      let failed = -1;
      for (; i < 200 && failed < 0; i++) {
        const r = await post(url, token, "/api/ops/item.create", { title: `full ${i}`, body }, `k-full-${i}`).catch(
          () => ({ status: 0, body: null }),
        );
        outcomes.push(r.status);
        if (r.status !== 200) failed = i;
      }
      expect(failed).toBeGreaterThanOrEqual(0); // the disk did fill
      expect(outcomes[failed]).toBeGreaterThanOrEqual(500);
      // the case that duplicated items: the 500 came after the commit that made the item (its working file or
      // its SQLite record did not fit)
      const hubLog = execFileSync(
        "git",
        ["--git-dir", `${inside}/.drover/hub/.git`, "log", "--format=%b", "drover/hub"],
        { encoding: "utf8" },
      );
      expect(hubLog).toContain(`"title":"full ${failed}"`);
      unlinkSync(`${inside}/ballast`);
      // every request made so far, retried with its key: each answers, and each title exists once
      for (let j = 0; j <= failed; j++) {
        const r = await post(url, token, "/api/ops/item.create", { title: `full ${j}`, body }, `k-full-${j}`);
        expect({ j, status: r.status }).toEqual({ j, status: 200 });
      }
      const items = (await api(url, token, "/api/items")).body as Array<{ title: string }>;
      const counts = new Map<string, number>();
      for (const it of items) counts.set(it.title, (counts.get(it.title) ?? 0) + 1);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      expect(counts.size).toBe(failed + 1);
    } finally {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

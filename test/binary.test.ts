/**
 * The compiled binary, started as a user would: copied into an empty folder far from any node_modules,
 * `init` in a fresh git repository, `serve --port 0`, then HTTP, WebSocket and MCP against it.
 * `npm test` builds `dist/drover` first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { pathsFor } from "../core/paths.ts";
import { api, BINARY, type DaemonProc, run, startDaemonProcess, wsClient } from "./helpers.ts";

let work: string;
let drover: string;
let repo: string;

beforeAll(() => {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run "npm run build" (npm test does)`);
  work = realpathSync(mkdtempSync(join(tmpdir(), "drover-bin-")));
  drover = join(work, "bin", "drover");
  execFileSync("mkdir", ["-p", join(work, "bin")]);
  copyFileSync(BINARY, drover);
  execFileSync("chmod", ["+x", drover]);
  repo = join(work, "project");
  execFileSync("git", ["init", "-q", repo]);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("compiled binary", () => {
  test("version and doctor run with no node_modules in sight; the watcher binding is embedded", async () => {
    const v = await run([drover, "version"], join(work, "bin"));
    expect(v).toMatchObject({ code: 0, stdout: "drover 0.1.0\n" });
    const doctor = await run([drover, "doctor", "--json"], join(work, "bin"));
    const checks = JSON.parse(doctor.stdout) as Array<{ check: string; ok: boolean; detail: string }>;
    expect(checks.find((c) => c.check === "watcher")).toMatchObject({ ok: true });
    expect(checks.find((c) => c.check === "sqlite")).toMatchObject({ ok: true, detail: "journal_mode wal" });
  });

  describe("serve", () => {
    let daemon: DaemonProc;
    const paths = () => pathsFor(repo);

    beforeAll(async () => {
      const init = await run([drover, "init", "--local"], repo);
      expect(init.code).toBe(0);
      daemon = await startDaemonProcess([drover], paths());
    });
    afterAll(async () => {
      daemon.proc.kill("SIGKILL");
      await daemon.proc.exited;
    });

    test("/health answers; the API needs the token", async () => {
      const health = await fetch(daemon.url + "/health");
      expect(health.status).toBe(200);
      expect(((await health.json()) as any).ok).toBe(true);
      expect((await fetch(daemon.url + "/api/items")).status).toBe(401);
    });

    test("a WebSocket client receives a published event with seq 1", async () => {
      const client = await wsClient(daemon.url, daemon.token);
      const created = await api(daemon.url, daemon.token, "/api/items", { title: "binary item" });
      expect(created.status).toBe(201);
      const frame = await client.waitFor((f) => f.type === "item_created");
      expect(frame).toMatchObject({ seq: 1, type: "item_created", item_id: created.body.id, origin: "local" });
      client.close();
    });

    test("an MCP client lists the ops as tools and calls one", async () => {
      const client = new Client({ name: "binary-test", version: "1" });
      const transport = new StreamableHTTPClientTransport(new URL(daemon.url + "/mcp"), {
        requestInit: { headers: { authorization: `Bearer ${daemon.token}` } },
      });
      await client.connect(transport);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain("item.next");
      const listed = (await client.callTool({ name: "items.list", arguments: {} })) as any;
      expect(JSON.parse(listed.content[0].text).map((i: any) => i.title)).toContain("binary item");
      await client.close();
    });

    test("a second serve exits 1 naming the first one's pid; after kill -9 serve starts again", async () => {
      const second = await run([drover, "serve", "--port", "0"], repo);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`pid ${daemon.pid}`);
      daemon.proc.kill("SIGKILL");
      await daemon.proc.exited;
      expect(existsSync(paths().daemon)).toBe(true); // left behind by the killed daemon
      daemon = await startDaemonProcess([drover], paths());
      expect((await fetch(daemon.url + "/health")).status).toBe(200);
    });

    test("SIGTERM shuts down cleanly and removes daemon.json", async () => {
      await daemon.stop();
      expect(daemon.proc.exitCode).toBe(0);
      expect(existsSync(paths().daemon)).toBe(false);
      daemon = await startDaemonProcess([drover], paths());
    });
  });
});

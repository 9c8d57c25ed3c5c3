import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { CommandDef } from "citty";
import { main } from "../cli.ts";
import { BUN, CLI, cli, startDaemonProcess, tempProject, testRuntime } from "./helpers.ts";

let project: Awaited<ReturnType<typeof tempProject>>;
beforeAll(async () => (project = await tempProject()));
afterAll(() => project.cleanup());

describe("cli", () => {
  test("an op is a command with flags named after its fields; --json prints JSON", async () => {
    const created = await cli(
      ["item", "create", "--title", "Ship it", "--labels", "ui,api", "--priority", "0", "--json"],
      project.dir,
    );
    expect(created.code).toBe(0);
    const item = JSON.parse(created.stdout);
    expect(item).toMatchObject({ title: "Ship it", labels: ["ui", "api"], priority: 0, stage: "backlog" });
    const table = await cli(["items", "list"], project.dir);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+STAGE\s+PRIORITY/);
    expect(table.stdout).toContain(item.id);
  });

  test("every op a runtime has is a command, the hub layer's `drover log` included", async () => {
    const { rt } = await testRuntime(project.paths, { mode: "cli" });
    const names = rt.ops.list().map((o) => o.name);
    await rt.close();
    const commands = main.subCommands as Record<string, CommandDef<any>>;
    const missing = names.filter((name) => {
      const [head, ...rest] = name.split(".");
      const command = commands[head!];
      return !command || (rest.length > 0 && !(command.subCommands as Record<string, unknown>)[rest.join("-")]);
    });
    expect(missing).toEqual([]);
    expect(names).toContain("log");
    const log = await cli(["log", "--json"], project.dir);
    expect(log.code).toBe(0);
    expect(JSON.parse(log.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ op: "item.create" })]));
  });

  test("exit codes: 1 refused, 2 bad input or usage, each with one readable line", async () => {
    expect((await cli(["item", "next", "--agent", "a0"], project.dir)).code).toBe(0); // takes the only ready item
    const cases: Array<[string[], number, RegExp]> = [
      [["item", "get", "--id", "zzzzz"], 1, /^drover: Cannot find item "zzzzz"\n$/],
      [["item", "get", "--id", "../x"], 2, /^drover: Invalid "id": /],
      [["item", "get", "--id", "a".repeat(10_000)], 2, /^drover: Invalid "id": /],
      [["item", "create"], 2, /^drover: Invalid "title": /],
      [["item", "create", "--title", "x", "--priority", "high"], 2, /^drover: Invalid "priority": /],
      [["item", "create", "--titel", "x"], 2, /^drover: Unknown option "--titel"/],
      [["no-such-command"], 2, /^drover: Unknown command no-such-command/],
      [["item", "next", "--agent", "a1"], 1, /^Nothing is ready/],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await cli(args, project.dir);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(stderr);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("a bad config value is exit 2 naming the key and the file; an unknown key is a warning", async () => {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(project.paths.config, '[server]\nport = "high"\n');
    const bad = await cli(["items", "list"], project.dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `drover: Invalid value for "server.port" in "${project.paths.config}": Invalid input: expected number, received string\n`,
    );
    writeFileSync(project.paths.config, '[hub]\nremote = ""\nsurprise = 1\n');
    const warned = await cli(["items", "list"], project.dir);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toBe(`drover: Unknown key "hub.surprise" in "${project.paths.config}"\n`);
  });

  test("--help prints usage and exits 0; outside a project a command says how to start", async () => {
    const help = await cli(["item", "claim", "--help"], project.dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--agent");
    const outside = await cli(["items", "list"], "/");
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('run "drover init"');
  });
});

describe("ops whose work lives in the daemon", () => {
  test("relay status goes to the running daemon; an op's path parameter is also its argument", async () => {
    const project = await tempProject({ config: '[hub]\nremote = ""\n' });
    const gateway = { DROVER_GATEWAY_URL: "ws://127.0.0.1:9/", DROVER_GATEWAY_TOKEN: "t", DROVER_GATEWAY_PROJECT: "p" };
    const daemon = await startDaemonProcess([BUN, CLI], project.paths, gateway);
    try {
      // the daemon's relay, not this command's (which has none): its queue and its last error are there
      const relay = JSON.parse((await cli(["relay", "status", "--json"], project.dir, gateway)).stdout);
      expect(relay).toMatchObject({ configured: true, url: gateway.DROVER_GATEWAY_URL, queued: expect.any(Number) });
      expect(relay.detail).toBeUndefined();
      const item = JSON.parse((await cli(["item", "create", "--title", "by argument", "--json"], project.dir)).stdout);
      expect(JSON.parse((await cli(["item", "get", item.id, "--json"], project.dir)).stdout).title).toBe("by argument");
    } finally {
      await daemon.stop();
      project.cleanup();
    }
  }, 60_000);
});

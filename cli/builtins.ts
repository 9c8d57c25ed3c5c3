/** @module The commands that are not ops: init, serve, status, reconcile, doctor, dashboard, hook, gateway… */
import { type CommandDef, defineCommand } from "citty";
import { readDaemon } from "../core/daemon-file.ts";
import { DroverError } from "../core/errors.ts";
import { escapeControls } from "../core/escape.ts";
import { readToken } from "../core/identity.ts";
import { createLogger } from "../core/logger.ts";
import { findProject } from "../core/paths.ts";
import { TRUST_COMMAND } from "../core/trust.ts";
import { VERSION } from "../runtime.ts";
import { demo, demoAgent } from "./demo.ts";
import { runDoctor } from "./doctor.ts";
import { type HookOutcome, parseClaudeHook, parseCodexNotify, readHookStdin, runHookSafely } from "./hook.ts";
import { initProject } from "./init.ts";
import { integrate } from "./integrate/index.ts";
import { callDaemon } from "./ops.ts";
import { renderResult } from "./output.ts";
import { withRuntime } from "./project.ts";
import { trust } from "./trust.ts";

const json = { type: "boolean", description: "Print the result as JSON" } as const;

const init = defineCommand({
  meta: { name: "init", description: "Set drover up in this git repository (.drover/)" },
  args: {
    local: { type: "boolean", description: "Keep the hub on this machine only (no remote)" },
    trust: {
      type: "boolean",
      description: "Approve the committed config's values with effects on this machine (see drover trust)",
    },
  },
  async run({ args }) {
    const r = await initProject(process.cwd(), { local: args.local, trust: args.trust });
    for (const w of r.warnings) console.error(`drover: ${escapeControls(w)}`);
    if (r.approved.length) console.log(`Approved on this machine: ${r.approved.map((k) => `"${k}"`).join(", ")}`);
    console.log(
      r.created
        ? `Initialized drover in "${r.paths.dir}" (machine "${r.machine_id}")`
        : `drover is already set up in "${r.paths.dir}"`,
    );
    const hub = {
      local: "Hub: local only",
      joined: "Hub: joined the remote's drover/hub branch",
      pushed: "Hub: created drover/hub on the remote",
    };
    console.log(
      r.hub === "offline"
        ? `Hub: not synced yet (${r.hub_error}); ops wait and go out when the remote is reachable`
        : hub[r.hub],
    );
  },
});

const serve = defineCommand({
  meta: { name: "serve", description: "Run the daemon in the foreground" },
  args: {
    host: { type: "string", description: "Address to bind (default: server.host)" },
    port: { type: "string", description: "Port, 0 for any free one (default: server.port)" },
  },
  async run({ args }) {
    const port = args.port === undefined ? undefined : Number(args.port);
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65_535)) {
      throw new DroverError("invalid_input", `Invalid "--port": "${args.port}" is not a port number`);
    }
    const { serveDaemon } = await import("./daemon.ts"); // the server stays out of every other command
    const daemon = await serveDaemon(findProject(), { host: args.host, port });
    console.log(`drover ${VERSION} serving "${daemon.rt.ctx.paths.root}" at ${daemon.server.url} (pid ${process.pid})`);
    await new Promise(() => undefined);
  },
});

const status = defineCommand({
  meta: { name: "status", description: "This project's drover: machine, daemon, hub" },
  args: { json },
  async run({ args }) {
    const paths = findProject();
    const daemon = readDaemon(paths);
    const report = await withRuntime(async (rt) => {
      const sync = (await rt.ops.run("sync.status", {})) as Record<string, unknown>;
      return {
        project: paths.root,
        machine_id: rt.ctx.machineId,
        version: VERSION,
        daemon: daemon ? { pid: daemon.pid, url: daemon.url, started_at: daemon.started_at } : null,
        hub: {
          remote: sync.remote,
          branch: sync.branch,
          head: sync.head,
          pending_ops: sync.pending_ops,
          diverged: sync.diverged,
          last_error: sync.last_error,
        },
        untrusted: rt.ctx.untrusted,
        gateway: await _relayStatus(daemon?.url ?? null, rt.ctx.config.gateway.url),
      };
    });
    if (args.json) return console.log(JSON.stringify(report, null, 2));
    console.log(
      renderResult({
        ...report,
        daemon: daemon ? `running, pid ${daemon.pid}, ${daemon.url ?? "starting"}` : "not running",
        hub: `${report.hub.branch} @ ${String(report.hub.head ?? "-").slice(0, 10)}, ${report.hub.remote ? `remote "${report.hub.remote}"` : "local only"}, ${report.hub.pending_ops} ops pending${report.hub.diverged ? ` — the remote's history was rewritten: run "drover sync adopt" or "drover sync restore"` : ""}`,
        trust: report.untrusted.length
          ? `${report.untrusted.map((u) => `"${u.key}"`).join(", ")} ${report.untrusted.length === 1 ? "waits" : "wait"} for approval: run "${TRUST_COMMAND}"`
          : "every value with effects is approved",
        gateway: report.gateway.configured
          ? `${report.gateway.url}: ${report.gateway.connected ? "relay connected" : `relay not connected${report.gateway.last_error ? ` (${report.gateway.last_error})` : ""}`}`
          : "none",
      }),
    );
  },
});

const reconcile = defineCommand({
  meta: { name: "reconcile", description: "Converge every feature with the hub now (idempotent)" },
  args: { json },
  async run({ args }) {
    const reports = await withRuntime((rt) => rt.reconcile());
    console.log(
      args.json
        ? JSON.stringify(reports, null, 2)
        : renderResult(Object.entries(reports).map(([feature, r]) => ({ feature, ...r }))),
    );
  },
});

const doctor = defineCommand({
  meta: { name: "doctor", description: "Check git, the file watcher, SQLite and this project" },
  args: { json },
  async run({ args }) {
    const checks = await runDoctor(process.cwd());
    console.log(
      args.json
        ? JSON.stringify(checks, null, 2)
        : renderResult(checks.map((c) => ({ ...c, ok: c.ok ? "ok" : "FAIL" }))),
    );
    if (checks.slice(0, 3).some((c) => !c.ok)) process.exitCode = 3;
  },
});

const gateway = defineCommand({
  meta: { name: "gateway", description: "Run the gateway: every project's agents and pipeline in one place" },
  args: {
    config: {
      type: "string",
      required: true,
      description: "gateway.toml: token for readers, [[project]] name and token",
    },
    host: { type: "string", description: "Address to bind (default 127.0.0.1)" },
    port: { type: "string", description: "Port (default 4380; 0 for any free one)" },
  },
  async run({ args }) {
    const { loadGatewayConfig } = await import("../features/gateway/config.ts");
    const { startGateway } = await import("../features/gateway/server.ts");
    const port = args.port === undefined ? 4380 : Number(args.port);
    if (!(Number.isInteger(port) && port >= 0 && port <= 65_535))
      throw new DroverError("invalid_input", `Invalid "--port": "${args.port}" is not a port number`);
    const config = await loadGatewayConfig(args.config);
    const running = startGateway(config, { host: args.host ?? "127.0.0.1", port, log: createLogger("gateway") });
    const stop = () => void running.stop().then(() => process.exit(0));
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    console.log(
      `drover gateway ${VERSION} at ${running.url} for ${config.project.map((p) => `"${p.name}"`).join(", ")} (pid ${process.pid})`,
    );
    await new Promise(() => undefined);
  },
});

const version = defineCommand({
  meta: { name: "version", description: "Print drover's version" },
  run() {
    console.log(`drover ${VERSION}`);
  },
});

const dashboard = defineCommand({
  meta: {
    name: "dashboard",
    description: "Print (and, in a terminal with a browser, open) the dashboard's URL with the token",
  },
  args: { open: { type: "boolean", default: true, description: "Open it in a browser when one is there" } },
  async run({ args }) {
    const paths = findProject();
    const daemon = readDaemon(paths);
    if (!daemon?.url)
      throw new DroverError(
        "not_initialized",
        'Cannot show the dashboard: no daemon is running here (start one with "drover serve")',
      );
    const link = `${daemon.url}/#token=${readToken(paths)}`;
    console.log(link);
    const opener = process.platform === "darwin" ? "open" : "xdg-open";
    if (args.open && process.stdout.isTTY && Bun.which(opener))
      Bun.spawn([opener, link], { stdout: "ignore", stderr: "ignore" }).unref();
  },
});

/** The daemon's relay state, asked of the daemon (the relay lives there). */
async function _relayStatus(daemonUrl: string | null, gatewayUrl: string): Promise<Record<string, unknown>> {
  if (!gatewayUrl) return { configured: false, connected: false };
  const down = (why: string) => ({ configured: true, url: gatewayUrl, connected: false, last_error: why });
  if (!daemonUrl) return down("the daemon is not running");
  return ((await callDaemon(daemonUrl, "relay.status", {}, { timeoutMs: 2000 }).catch(() => null)) ??
    down("the daemon did not answer")) as Record<string, unknown>;
}

const hookClaude = defineCommand({
  meta: {
    name: "claude",
    description: "Claude Code hook: reads the hook's JSON on stdin, writes a heartbeat; always exits 0",
  },
  async run() {
    _exitSoon();
    _sayContext(await runHookSafely(async () => parseClaudeHook(await readHookStdin()), { prefix: "claude" }));
  },
});
const hookCodex = defineCommand({
  meta: {
    name: "codex",
    description:
      "Codex hook: its notify JSON as the argument, or a hooks.json event on stdin; writes a heartbeat; always exits 0",
  },
  args: { payload: { type: "positional", required: false, description: "The notification JSON Codex passes" } },
  async run({ args }) {
    _exitSoon();
    // notify passes one JSON argument; Codex's hooks.json hooks (Claude Code's format) pass their event on stdin
    const read =
      args.payload !== undefined
        ? () => parseCodexNotify(String(args.payload))
        : async () => parseClaudeHook(await readHookStdin());
    _sayContext(await runHookSafely(read, { prefix: "codex" }));
  },
});

/** A session's start: what its model is told (its agent id, its item), in the hook output both clients read. */
function _sayContext(outcome: HookOutcome | null): void {
  if (!outcome?.context) return;
  console.log(
    JSON.stringify({ hookSpecificOutput: { hookEventName: "SessionStart", additionalContext: outcome.context } }),
  );
}

const hook = defineCommand({
  meta: { name: "hook", description: "Agent hooks that turn lifecycle events into heartbeats (see drover integrate)" },
  subCommands: { claude: hookClaude, codex: hookCodex } as Record<string, CommandDef<any>>,
});

/** A hook must never hold its agent up: whatever happens, this process is gone well within a second. */
function _exitSoon() {
  setTimeout(() => process.exit(0), 400).unref();
}

export const builtinCommands = {
  init,
  trust,
  serve,
  status,
  reconcile,
  doctor,
  dashboard,
  version,
  demo,
  "demo-agent": demoAgent,
  hook,
  integrate,
  gateway,
} as Record<string, CommandDef<any>>;

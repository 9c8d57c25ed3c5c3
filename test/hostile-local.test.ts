/**
 * Hostile local files and processes (SPEC §12, third row): whatever sits in `.drover/` — a FIFO, a symlink to
 * `/dev/zero`, a socket, a file swapped while it is read, a `daemon.json` naming a pid now held by another
 * process — never hangs or bloats the daemon, never sends the token elsewhere, and never stops a valid
 * heartbeat's events. Plus the rest of the process side: SIGHUP, file modes, the terminal, and hook input.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { MAX_HOOK_INPUT_BYTES, MAX_HOOK_LOG_BYTES, readHookStdin, sessionKey } from "../cli/hook.ts";
import { escapeControls } from "../core/escape.ts";
import { readRegularFile } from "../core/files.ts";
import { pathsFor, secureProjectDir } from "../core/paths.ts";
import { processStart } from "../core/process.ts";
import { parseHeartbeat } from "../features/heartbeats/file.ts";
import { itemPath } from "../features/pipeline/item.ts";
import {
  api,
  BUN,
  CLI,
  cli,
  type DaemonProc,
  hostileRuns,
  run,
  startDaemonProcess,
  tempProject,
  wsClient,
} from "./helpers.ts";

/** Raw bytes a terminal would act on: C0 but newline, DEL, C1, bidi controls. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

const mkfifo = (path: string) => execFileSync("mkfifo", [path]);
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const heartbeat = (agent: string) =>
  JSON.stringify({
    agent_id: agent,
    machine_id: "elsewhere",
    last_heartbeat: new Date().toISOString(),
    active_item_id: null,
    state: "working",
  });

/** Whether the daemon answers /health within `ms` (and how long it took). */
async function health(url: string, ms: number): Promise<number> {
  const started = performance.now();
  const ok = await fetch(url + "/health", { signal: AbortSignal.timeout(Math.max(ms, 1000)) }).then(
    (r) => r.ok,
    () => false,
  );
  return ok ? performance.now() - started : Infinity;
}

describe("readRegularFile", () => {
  let dir: string;
  let socket: Server;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "drover-read-"));
    writeFileSync(join(dir, "plain"), "hello");
    writeFileSync(join(dir, "big"), "x".repeat(100));
    mkfifo(join(dir, "fifo"));
    symlinkSync("/dev/zero", join(dir, "zero"));
    symlinkSync(join(dir, "plain"), join(dir, "link"));
    mkdirSync(join(dir, "folder"));
    socket = createServer();
    await new Promise<void>((r) => socket.listen(join(dir, "sock"), r));
  });
  afterAll(() => {
    socket.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("reads only a regular file within the cap; says why for anything else; null when absent", () => {
    const read = (name: string, maxBytes = 64) => readRegularFile(join(dir, name), { maxBytes });
    expect(read("plain")).toEqual({ text: "hello" });
    expect(read("absent")).toBeNull();
    expect(read("big")).toEqual({ error: "file too large (100 bytes)" });
    expect(read("big", 100)).toEqual({ text: "x".repeat(100) });
    expect(read("fifo")).toEqual({ error: "not a regular file: a FIFO" });
    expect(read("zero")).toEqual({ error: "not a regular file: a symlink (not followed)" });
    expect(read("link")).toEqual({ error: "not a regular file: a symlink (not followed)" });
    expect(read("folder")).toEqual({ error: "not a regular file: a folder" });
    expect(read("sock")).toEqual({ error: "not a regular file: a socket" });
    expect(readRegularFile("/dev/null", { maxBytes: 64 })).toEqual({ error: "not a regular file: a device" });
  });
});

describe("special files in heartbeats/, with the daemon as a separate process", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  let daemon: DaemonProc;
  let outside: string;
  const sockets: Server[] = [];
  beforeAll(async () => {
    project = await tempProject({
      config: '[hub]\nremote = ""\n[heartbeats]\npoll_secs = 1\n[pipeline]\nauto_assign = false\n',
    });
    outside = mkdtempSync(join(tmpdir(), "drover-outside-"));
    writeFileSync(join(outside, "target.json"), heartbeat("target"));
    daemon = await startDaemonProcess([BUN, CLI], project.paths);
  });
  afterAll(async () => {
    daemon.proc.kill("SIGKILL"); // a daemon frozen by the old code would not answer SIGTERM
    await daemon.proc.exited;
    for (const s of sockets) s.close();
    project.cleanup();
    rmSync(outside, { recursive: true, force: true });
  });

  type Kind = "fifo" | "devzero" | "symlink" | "folder" | "socket" | "oversized" | "swapped";
  const reasons: Record<Kind, RegExp> = {
    fifo: /FIFO/,
    devzero: /symlink/,
    symlink: /symlink/,
    folder: /folder/,
    socket: /socket/,
    oversized: /too large/,
    swapped: /FIFO|symlink/,
  };

  /** Puts one special file at `path`; "swapped" starts as a regular file that a loop keeps replacing. */
  async function plant(kind: Kind, path: string): Promise<void> {
    if (kind === "fifo") mkfifo(path);
    else if (kind === "devzero") symlinkSync("/dev/zero", path);
    else if (kind === "symlink") symlinkSync(join(outside, "target.json"), path);
    else if (kind === "folder") mkdirSync(path);
    else if (kind === "socket") {
      const s = createServer();
      sockets.push(s);
      await new Promise<void>((r) => s.listen(path, r));
    } else if (kind === "oversized") {
      writeFileSync(path, heartbeat("x"));
      truncateSync(path, 10 * 1024 * 1024 * 1024); // sparse: 10 GiB that take no disk
    } else writeFileSync(path, heartbeat("x"));
  }

  /** Replaces `path` over and over: a valid file, a FIFO, a symlink to /dev/zero; ends on the FIFO. */
  async function swapLoop(path: string, untilMs: number): Promise<number> {
    let swaps = 0;
    const tmp = join(outside, "swap");
    while (performance.now() < untilMs) {
      for (const make of [
        () => writeFileSync(tmp, heartbeat("x")),
        () => symlinkSync("/dev/zero", tmp),
        () => mkfifo(tmp),
      ]) {
        make();
        renameSync(tmp, path);
        swaps++;
        await Bun.sleep(1);
      }
    }
    return swaps;
  }

  test("generated: /health within 100 ms, RSS bounded, each listed invalid with a reason, valid heartbeats beside them still produce events", async () => {
    const client = await wsClient(daemon.url, daemon.token);
    const baseline = rssMb(daemon.pid);
    const heartbeats = join(project.paths.hub, "heartbeats");
    let round = 0;
    const kinds = fc.uniqueArray(
      fc.constantFrom<Kind>("fifo", "devzero", "symlink", "folder", "socket", "oversized", "swapped"),
      { minLength: 1, maxLength: 7 },
    );
    await fc.assert(
      fc.asyncProperty(kinds, fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), async (planted, stem) => {
        round++;
        const files = planted.map((kind, i) => ({ kind, name: `${stem}-${round}-${i}.json` }));
        for (const f of files) await plant(f.kind, join(heartbeats, f.name));
        const swapped = files.find((f) => f.kind === "swapped");
        const swapping = swapped
          ? swapLoop(join(heartbeats, swapped.name), performance.now() + 600)
          : Promise.resolve(0);

        // the daemon answers throughout, and quickly
        const latencies: number[] = [];
        for (let i = 0; i < 12; i++) {
          latencies.push(await health(daemon.url, 100));
          await Bun.sleep(50);
        }
        const swaps = await swapping;
        expect({ planted, slow: latencies.filter((ms) => ms >= 100) }).toEqual({ planted, slow: [] });
        if (swapped) expect(swaps).toBeGreaterThan(10);

        // a valid heartbeat written beside them is still seen and published
        const alive = `alive-${round}`;
        writeFileSync(join(outside, "alive.tmp"), heartbeat(alive));
        renameSync(join(outside, "alive.tmp"), join(heartbeats, `${alive}.json`));
        await client.waitFor((f) => f.type === "heartbeat" && f.agent_id === alive, 5000);

        // each special file is listed as invalid, with the reason (the poll finds what the watcher missed)
        const deadline = Date.now() + 5000;
        for (;;) {
          const rows = (await api(daemon.url, daemon.token, "/api/agents?all=true")).body as Array<{
            agent_id: string;
            status: string;
            reason?: string;
          }>;
          const missing = files.filter((f) => {
            const row = rows.find((r) => r.agent_id === f.name.slice(0, -5) && r.status === "invalid");
            return !row || !reasons[f.kind].test(row.reason ?? "");
          });
          if (!missing.length) break;
          if (Date.now() > deadline)
            throw new Error(`not listed as invalid: ${JSON.stringify(missing)}; rows ${JSON.stringify(rows)}`);
          await Bun.sleep(100);
        }
        expect(rssMb(daemon.pid) - baseline).toBeLessThan(150);
        for (const f of files) rmSync(join(heartbeats, f.name), { recursive: true, force: true });
      }),
      { numRuns: hostileRuns(4) },
    );
    client.close();
  }, 120_000);
});

describe("daemon.json naming a live pid that is not the daemon", () => {
  test("serve starts; status says not running; a CLI op sends nothing to the URL named there", async () => {
    const project = await tempProject({ config: '[hub]\nremote = ""\n' });
    const stranger = Bun.spawn(["sleep", "60"]);
    const requests: string[] = [];
    const listener = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        requests.push(`${req.method} ${new URL(req.url).pathname} ${req.headers.get("authorization") ?? ""}`);
        return Response.json({ delivered: 0 });
      },
    });
    let daemon: DaemonProc | undefined;
    try {
      const start = processStart(stranger.pid);
      expect(start).not.toBeNull(); // Linux: the test means nothing without /proc
      const url = `http://127.0.0.1:${listener.port}`;
      const info = {
        pid: stranger.pid,
        pid_start: String(Number(start) - 1),
        host: hostname(),
        port: listener.port,
        url,
        started_at: new Date().toISOString(),
        version: "0.0.0",
      };
      writeFileSync(project.paths.daemon, JSON.stringify(info));

      const status = await cli(["status"], project.dir);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^daemon\s+not running$/m);
      expect((await cli(["item", "create", "--title", "x"], project.dir)).code).toBe(0);
      expect(requests).toEqual([]);

      daemon = await startDaemonProcess([BUN, CLI], project.paths);
      expect((await fetch(daemon.url + "/health")).ok).toBe(true);
      expect(JSON.parse(readFileSync(project.paths.daemon, "utf8"))).toMatchObject({
        pid: daemon.pid,
        pid_start: processStart(daemon.pid),
      });
      expect((await cli(["status"], project.dir)).stdout).toMatch(
        new RegExp(`^daemon\\s+running, pid ${daemon.pid}`, "m"),
      );
      expect(requests).toEqual([]);
    } finally {
      await daemon?.stop();
      stranger.kill("SIGKILL");
      await listener.stop(true);
      project.cleanup();
    }
  }, 60_000);
});

describe("signals", () => {
  // sent as soon as daemon.json names the URL: a loaded CI machine once delivered it before the handler was in
  test("SIGHUP stops the daemon cleanly: exit 0, daemon.json removed", async () => {
    const project = await tempProject({ config: '[hub]\nremote = ""\n' });
    try {
      for (let round = 0; round < 5; round++) {
        const daemon = await startDaemonProcess([BUN, CLI], project.paths);
        daemon.proc.kill("SIGHUP");
        expect([round, await daemon.proc.exited, daemon.proc.signalCode]).toEqual([round, 0, null]);
        expect(existsSync(project.paths.daemon)).toBe(false);
      }
    } finally {
      project.cleanup();
    }
  }, 60_000);
});

describe("file modes", () => {
  /** Every path under .drover but worktrees/, with its permission bits. */
  function modes(dir: string): Array<[string, string]> {
    const out: Array<[string, string]> = [[dir, (lstatSync(dir).mode & 0o777).toString(8)]];
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name === "worktrees") continue;
      if (lstatSync(path).isDirectory()) out.push(...modes(path));
      else out.push([path, (lstatSync(path).mode & 0o777).toString(8)]);
    }
    return out;
  }

  test("a project made and run by drover processes: .drover and its folders 0700, every file 0600", async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-modes-")));
    const paths = pathsFor(dir);
    let daemon: DaemonProc | undefined;
    try {
      execFileSync("git", ["init", "-q", dir]);
      expect((await run([BUN, CLI, "init", "--local"], dir)).code).toBe(0);
      daemon = await startDaemonProcess([BUN, CLI], paths);
      const added = await api(daemon.url, daemon.token, "/api/ops/trigger.add", {
        mode: "persistent",
        on: { event: "transition" },
        action: { webhook: { url: "http://127.0.0.1:9/hook", headers: { authorization: "Bearer webhook-secret-1" } } },
      });
      expect(added.status).toBe(200);
      await api(daemon.url, daemon.token, "/api/ops/heartbeat", { agent: "a1" });
      expect((await run([BUN, CLI, "hook", "claude"], dir, {})).code).toBe(0); // no stdin: hooks.log gets a line
      const hook = JSON.stringify({ session_id: "s1", cwd: dir, hook_event_name: "SessionStart" });
      const proc = Bun.spawn([BUN, CLI, "hook", "claude"], { cwd: dir, stdin: new TextEncoder().encode(hook) });
      expect(await proc.exited).toBe(0);
      const holds = (name: string) => readFileSync(join(paths.dir, name)).includes("webhook-secret-1");
      expect(holds("state.db-wal") || holds("state.db")).toBe(true); // the secret is on disk: it must be closed to others
      for (const name of [
        "state.db",
        "state.db-wal",
        "state.db-shm",
        "token",
        "machine.json",
        "daemon.json",
        "hub.lock",
        "hooks.log",
        `hooks/claude-${sessionKey("s1")}.json`,
        `hooks/sessions/${sessionKey("s1")}.json`,
      ]) {
        expect(existsSync(join(paths.dir, name))).toBe(true);
      }
      const wrong = modes(paths.dir).filter(([path, mode]) => mode !== (statSync(path).isDirectory() ? "700" : "600"));
      expect(wrong).toEqual([]);
    } finally {
      await daemon?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("secureProjectDir closes a .drover made by others (git, an older drover), worktrees left alone", async () => {
    const project = await tempProject();
    try {
      const worktreeFile = join(project.paths.worktrees, "k7q2m", "README.md");
      mkdirSync(join(project.paths.worktrees, "k7q2m"), { recursive: true });
      writeFileSync(worktreeFile, "x");
      for (const [path] of modes(project.paths.dir)) chmodSync(path, lstatSync(path).isDirectory() ? 0o755 : 0o644);
      chmodSync(worktreeFile, 0o644);
      expect(secureProjectDir(project.paths)).toEqual([]);
      expect(
        modes(project.paths.dir).filter(([path, mode]) => mode !== (statSync(path).isDirectory() ? "700" : "600")),
      ).toEqual([]);
      expect(statSync(worktreeFile).mode & 0o777).toBe(0o644);
    } finally {
      project.cleanup();
    }
  });
});

describe("terminal output", () => {
  test("escapeControls: C0, DEL, C1 and bidi controls become visible escapes; other text is kept", () => {
    expect(escapeControls("\u001b[31mred\u0007")).toBe("\\x1b[31mred\\x07");
    expect(escapeControls("a\tb\nc\rd\u007f\u0085\u009b")).toBe("a\\tb\\nc\\rd\\x7f\\x85\\x9b");
    expect(escapeControls("\u202eabc\u2066x\u2069")).toBe("\\u202eabc\\u2066x\\u2069");
    expect(escapeControls("naïve — 日本 \\x1b é")).toBe("naïve — 日本 \\x1b é");
  });

  test("items list, item get and error lines print no raw control bytes from stored text", async () => {
    const project = await tempProject({ config: '[hub]\nremote = ""\n' });
    try {
      const created = await cli(
        ["item", "create", "--title", "\u001b[31mred\u0007", "--labels", "\u202eabc", "--json"],
        project.dir,
      );
      expect(created.code).toBe(0);
      const id = JSON.parse(created.stdout).id as string;
      for (const args of [
        ["items", "list"],
        ["item", "get", "--id", id],
      ]) {
        const r = await cli(args, project.dir);
        expect(r.code).toBe(0);
        expect(RAW_CONTROL.test(r.stdout)).toBe(false);
        expect(r.stdout).toContain("\\x1b[31mred\\x07");
        expect(r.stdout).toContain("\\u202eabc");
      }
      const json = await cli(["item", "get", "--id", id, "--json"], project.dir);
      expect(JSON.parse(json.stdout)).toMatchObject({ title: "\u001b[31mred\u0007", labels: ["\u202eabc"] });
      const error = await cli(["\u001b]0;pwned\u0007"], project.dir);
      expect(error.code).toBe(2);
      expect(RAW_CONTROL.test(error.stderr)).toBe(false);
      expect(error.stderr).toContain("\\x1b]0;pwned\\x07");
    } finally {
      project.cleanup();
    }
  }, 60_000);
});

describe("hook input, generated", () => {
  let root: string;
  let project: ReturnType<typeof pathsFor>;
  let neighbour: ReturnType<typeof pathsFor>;
  const timings: number[] = [];

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), "drover-hooks-")));
    for (const name of ["project", "neighbour"]) {
      execFileSync("git", ["init", "-q", join(root, name)]);
      expect((await run([BUN, CLI, "init", "--local"], join(root, name))).code).toBe(0);
    }
    project = pathsFor(join(root, "project"));
    neighbour = pathsFor(join(root, "neighbour"));
    mkdirSync(join(root, "plain"));
    mkfifo(join(root, "fifo"));
    writeFileSync(join(root, "outside.json"), "do not touch\n");
    // a worktree whose item is held; one whose item file is a FIFO
    mkdirSync(join(project.worktrees, "k7q2m", "src"), { recursive: true });
    mkdirSync(join(project.hub, "items", "k7"), { recursive: true });
    writeFileSync(join(project.hub, itemPath("k7q2m")), JSON.stringify(_heldItem("k7q2m", "agent-7")));
    mkdirSync(join(project.worktrees, "fifoq"), { recursive: true });
    mkdirSync(join(project.hub, "items", "fi"), { recursive: true });
    mkfifo(join(project.hub, itemPath("fifoq")));
    mkdirSync(join(project.dir, "hooks"), { recursive: true });
    // hooks.log just under its cap, so the runs below cross it
    writeFileSync(join(project.dir, "hooks.log"), "x".repeat(MAX_HOOK_LOG_BYTES - 50) + "\n");
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    if (timings.length)
      console.log(
        `hook processes: median ${Math.round(timings.sort((a, b) => a - b)[timings.length >> 1]!)} ms, max ${Math.round(timings.at(-1)!)} ms`,
      );
  });

  /**
   * Traps a careless hook would follow, at the names the hooks use (`<prefix>-<sessionKey>`) for the sessions the
   * generator names: a FIFO throttle file (session "fifo"), a symlinked heartbeat pointing outside ("link"), and a
   * FIFO, a symlink and a folder in place of a session's record ("record-fifo", "record-link", "record-dir").
   */
  function plantTraps() {
    const sessions = join(project.dir, "hooks", "sessions");
    mkdirSync(sessions, { recursive: true });
    const record = (session: string) => join(sessions, `${sessionKey(session)}.json`);
    for (const prefix of ["claude", "codex"]) {
      plantAt(join(project.dir, "hooks", `${prefix}-${sessionKey("fifo")}.json`), "fifo");
      plantAt(join(project.hub, "heartbeats", `${prefix}-${sessionKey("link")}.json`), "link");
    }
    plantAt(record("record-fifo"), "fifo");
    plantAt(record("record-link"), "link");
    plantAt(record("record-dir"), "dir");
  }

  /** Puts a FIFO, a symlink to `outside.json` or a folder at `path`, unless one is there already. */
  function plantAt(path: string, kind: "fifo" | "link" | "dir") {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (kind === "fifo" ? st?.isFIFO() : kind === "link" ? st?.isSymbolicLink() : st?.isDirectory()) return;
    rmSync(path, { recursive: true, force: true });
    if (kind === "fifo") mkfifo(path);
    else if (kind === "link") symlinkSync(join(root, "outside.json"), path);
    else mkdirSync(path);
  }

  /** Every path in the temp tree with what it is (no file is opened: FIFOs are there). */
  function snapshot(dir: string, out = new Map<string, string>()): Map<string, string> {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) {
        out.set(path, "dir");
        snapshot(path, out);
      } else out.set(path, `${st.isFile() ? "file" : st.isFIFO() ? "fifo" : "link"}:${st.size}:${st.mtimeMs}`);
    }
    return out;
  }

  /** Other folders, `/`, paths through `..`, nowhere, a FIFO, not a path at all. */
  const hostileCwd = () => {
    const places = [
      project.root,
      join(project.worktrees, "k7q2m", "src"),
      join(project.worktrees, "fifoq"),
      neighbour.root,
      join(neighbour.root, ".drover"),
      join(root, "plain"),
      join(root, "fifo"),
      join(root, "nowhere", "at", "all"),
      "/",
      `${project.root}/../neighbour`,
      `${project.worktrees}/../../../neighbour`,
      `${project.worktrees}/k7q2m/../../../../neighbour`,
      "..",
      "",
      "\u0000",
    ];
    return fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...places) },
      fc.string({ maxLength: 50 }),
      fc.jsonValue({ maxDepth: 2 }),
    );
  };
  /** The sessions plantTraps lays traps for. */
  const TRAPPED = ["fifo", "link", "record-fifo", "record-link", "record-dir"];
  const sessionId = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...TRAPPED) },
    fc.constantFrom("8f14e45f-ceea", "", "../../etc/passwd", "\u0000\u001b"),
    fc.string({ maxLength: 40 }),
    fc.integer(),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const livenessEvent = fc.constantFrom("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd");
  const eventName = fc.oneof(
    fc.constantFrom("Notification", "__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", ""),
    livenessEvent,
    fc.string({ maxLength: 20 }),
    fc.jsonValue({ maxDepth: 1 }),
  );
  const huge = fc.constantFrom(
    "x".repeat(5_000_000),
    "[".repeat(1_000_000),
    JSON.stringify({
      session_id: "huge",
      cwd: "CWD",
      hook_event_name: "PostToolUse",
      tool_response: { output: "y".repeat(5_000_000) },
    }),
  );
  /**
   * Made once the temp tree exists (the cwds name it). Each case is the stdin of one or more hook runs: a session's
   * events come after its SessionStart (events of a session that never started write nothing, and so would test
   * little).
   */
  const claudeInput = (): fc.Arbitrary<Array<string | Uint8Array>> => {
    const live = fc
      .record({
        session_id: sessionId,
        cwd: hostileCwd(),
        events: fc.array(livenessEvent, { minLength: 1, maxLength: 3 }),
      })
      .map(({ events, ...o }) =>
        ["SessionStart", ...events].map((hook_event_name) => JSON.stringify({ ...o, hook_event_name })),
      );
    const shaped = fc
      .record(
        { session_id: sessionId, cwd: hostileCwd(), hook_event_name: eventName, extra: fc.jsonValue({ maxDepth: 3 }) },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    const once = fc.oneof(
      shaped,
      fc.uint8Array({ maxLength: 4000 }),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ unit: "binary", maxLength: 500 }),
      huge,
    );
    return fc.oneof(
      { weight: 2, arbitrary: live },
      once.map((input) => [input]),
    );
  };

  /** Runs a hook process; kills it if it outlives 5 s (the old code could block forever). */
  async function hook(args: string[], stdin: Uint8Array | string | undefined, cwd: string) {
    const started = performance.now();
    const proc = Bun.spawn([BUN, CLI, "hook", ...args], {
      cwd,
      stdin: typeof stdin === "string" ? new TextEncoder().encode(stdin) : (stdin ?? "ignore"),
      stdout: "pipe",
      stderr: "pipe",
    });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    const code = await proc.exited;
    clearTimeout(killer);
    const ms = performance.now() - started;
    timings.push(ms);
    return { code, ms };
  }

  /** The properties: exit 0 in time; only allowed paths changed; at most one heartbeat, and a valid one. */
  function checkChanges(before: Map<string, string>, after: Map<string, string>, label: string) {
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter((p) => before.get(p) !== after.get(p));
    const heartbeatsDir = join(project.hub, "heartbeats") + "/";
    const allowed = (p: string) =>
      (p.startsWith(heartbeatsDir) && p.endsWith(".json")) ||
      (p.startsWith(join(project.dir, "hooks") + "/") &&
        (p.endsWith(".json") || p === join(project.dir, "hooks", "sessions"))) ||
      p === join(project.dir, "hooks.log") ||
      p === join(project.dir, "hooks.log.1");
    expect({ label, elsewhere: changed.filter((p) => !allowed(p)) }).toEqual({ label, elsewhere: [] });
    const beats = changed.filter((p) => p.startsWith(heartbeatsDir));
    expect({ label, beats: beats.length <= 1 }).toEqual({ label, beats: true });
    for (const p of beats) {
      const name = p.slice(heartbeatsDir.length);
      expect({
        label,
        valid: lstatSync(p).isFile() && "heartbeat" in parseHeartbeat(name, readFileSync(p, "utf8")),
      }).toEqual({ label, valid: true });
    }
  }

  const BOUND_MS = 1000; // the hook's own 400 ms, plus a process start from source on a busy 2-core machine

  /** Runs `drover hook <args>` once per input, with the traps planted before each: the properties hold after each. */
  async function hookRuns(args: string[], inputs: Array<string | Uint8Array>, cwd: string) {
    for (const input of inputs) {
      plantTraps();
      const before = snapshot(root);
      const stdin = typeof input === "string" ? input.replace('"CWD"', JSON.stringify(project.root)) : input;
      const r = await hook(args, stdin, cwd);
      const label = typeof input === "string" ? input.slice(0, 200) : `${input.length} bytes`;
      expect({ label, code: r.code, inTime: r.ms < BOUND_MS }).toEqual({ label, code: 0, inTime: true });
      checkChanges(before, snapshot(root), label);
    }
  }

  const processCwd = () => fc.constantFrom(project.root, join(project.worktrees, "k7q2m", "src"));
  /** Each trapped session's whole life, run first in every property: a short run may not generate them all. */
  const trappedLives = (): Array<[string[], string]> =>
    TRAPPED.map((session_id) => [
      ["SessionStart", "PostToolUse", "Stop", "SessionEnd"].map((hook_event_name) =>
        JSON.stringify({ session_id, cwd: project.root, hook_event_name }),
      ),
      project.root,
    ]);

  test("drover hook claude (stdin): exits 0 in time, writes one valid heartbeat in its own project or nothing, hooks.log bounded", async () => {
    await fc.assert(
      fc.asyncProperty(claudeInput(), processCwd(), (inputs, cwd) => hookRuns(["claude"], inputs, cwd)),
      { numRuns: hostileRuns(40), examples: trappedLives() },
    );
    expect(readFileSync(join(root, "outside.json"), "utf8")).toBe("do not touch\n");
    expect(statSync(join(project.dir, "hooks.log")).size).toBeLessThanOrEqual(MAX_HOOK_LOG_BYTES + 1000);
    expect(statSync(join(project.dir, "hooks.log.1")).size).toBeLessThanOrEqual(MAX_HOOK_LOG_BYTES + 1000);
  }, 180_000);

  test("drover hook codex (stdin, its hooks.json events): the same properties", async () => {
    await fc.assert(
      fc.asyncProperty(claudeInput(), processCwd(), (inputs, cwd) => hookRuns(["codex"], inputs, cwd)),
      { numRuns: hostileRuns(25), examples: trappedLives() },
    );
  }, 180_000);

  test("drover hook codex (argument): the same properties", async () => {
    const live = fc
      .record({ type: fc.constant("agent-turn-complete"), "thread-id": sessionId, cwd: hostileCwd() })
      .map((o) => JSON.stringify(o));
    const shaped = fc
      .record(
        {
          type: fc.oneof(fc.constant("agent-turn-complete"), fc.jsonValue({ maxDepth: 1 })),
          "thread-id": sessionId,
          cwd: hostileCwd(),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    const arg = fc
      .oneof(
        live,
        shaped,
        fc.string({ maxLength: 500 }),
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.constant("z".repeat(100_000)),
      )
      .map((s) => s.replace(/\u0000/g, "")); // an argument cannot hold NUL
    await fc.assert(
      fc.asyncProperty(arg, async (payload) => {
        plantTraps();
        const before = snapshot(root);
        const r = await hook(["codex", payload], undefined, project.root);
        const label = payload.slice(0, 200);
        expect({ label, code: r.code, inTime: r.ms < BOUND_MS }).toEqual({ label, code: 0, inTime: true });
        checkChanges(before, snapshot(root), label);
      }),
      {
        numRuns: hostileRuns(25),
        examples: TRAPPED.map((thread) => [
          JSON.stringify({ type: "agent-turn-complete", "thread-id": thread, cwd: project.root }),
        ]),
      },
    );
  }, 180_000);

  test("readHookStdin stops an endless stream at the cap instead of filling memory", async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 65_536;
        controller.enqueue(new Uint8Array(65_536));
      },
    });
    await expect(readHookStdin(endless)).rejects.toThrow(`Hook input is larger than ${MAX_HOOK_INPUT_BYTES} bytes`);
    expect(pulled).toBeLessThan(MAX_HOOK_INPUT_BYTES + 4 * 65_536);
    expect(await readHookStdin(new Blob(['{"a": 1}']).stream())).toBe('{"a": 1}');
  });

  test("valid input still works: a held worktree's agent, a fresh session; a FIFO in the log's place is skipped", async () => {
    const stop = (session: string, cwd: string) =>
      JSON.stringify({ session_id: session, cwd, hook_event_name: "SessionStart" });
    expect((await hook(["claude"], stop("fresh001", join(project.worktrees, "k7q2m", "src")), project.root)).code).toBe(
      0,
    );
    expect(JSON.parse(readFileSync(join(project.hub, "heartbeats", "agent-7.json"), "utf8"))).toMatchObject({
      active_item_id: "k7q2m",
      state: "idle",
    });
    expect((await hook(["claude"], stop("fresh002", neighbour.root), project.root)).code).toBe(0);
    const fresh = `claude-${sessionKey("fresh002")}.json`;
    expect(JSON.parse(readFileSync(join(project.hub, "heartbeats", fresh), "utf8"))).toMatchObject({
      state: "idle",
      active_item_id: null,
    });
    expect(existsSync(join(neighbour.hub, "heartbeats", fresh))).toBe(false);

    rmSync(join(project.dir, "hooks.log"), { force: true });
    mkfifo(join(project.dir, "hooks.log"));
    const r = await hook(["claude"], "not json", project.root);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(BOUND_MS);
  }, 60_000);
});

// --- internal ---

/** A valid item in the hub, in coding, held by `agent` until 2100. */
function _heldItem(id: string, agent: string) {
  const at = "2026-09-01T10:00:00.000Z";
  return {
    id,
    title: "x",
    body: "",
    labels: [],
    priority: 1,
    stage: "coding",
    depends_on: [],
    claim: { agent_id: agent, machine_id: "m1", claimed_at: at, expires_at: "2100-01-01T00:00:00.000Z", fence: 1 },
    fence: 1,
    created_at: at,
    created_by: "t",
    updated_at: at,
  };
}

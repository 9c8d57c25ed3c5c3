/**
 * `.drover/config.toml` is committed: any string where a string goes, generated. drover either works or refuses
 * with one readable line (exit 1 or 2) — never an internal error, never a hang — and never runs a command, trusted
 * or not. Branch names are checked by git's own rules before they reach a command line or a path.
 */
import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { checkBranchName } from "../core/git.ts";
import { cli, hostileRuns, tempProject } from "./helpers.ts";

const hostile = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "--upload-pack=touch${IFS}PWNED;x@y:",
      "-oProxyCommand=touch PWNED",
      "--receive-pack=touch PWNED",
      "ext::sh -c touch% PWNED",
      "$(touch PWNED)",
      "`touch PWNED`",
      "; touch PWNED",
      "--max-count=0",
      "../../etc",
      "/etc/passwd",
      "file:///etc",
      "http://user:pass@127.0.0.1:1/x.git",
      "https://127.0.0.1:1/",
      "origin",
      "",
      " ",
      "a\nb",
      "\u001b[31m",
      "\u202e",
      "x".repeat(5000),
      "@",
      "a..b",
      "main.lock",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
);

const STRING_KEYS = [
  ["server", "host"],
  ["hub", "remote"],
  ["hub", "branch"],
  ["pipeline", "base_branch"],
  ["gateway", "url"],
  ["gateway", "project"],
  ["gateway", "token"],
] as const;

/** A TOML basic string holding exactly `value`. */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\\u([0-9a-f]{4})/gi, (_m, hex: string) => `\\u${hex.toUpperCase()}`);
}

describe("config.toml values", () => {
  test("any string where a string goes: commands work or refuse in one line; nothing runs, approved or not", async () => {
    const project = await tempProject();
    const pwned = () => execFileSync("find", [project.dir, "-name", "PWNED"], { encoding: "utf8" }).trim();
    const lines = (text: string) =>
      text
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("drover: ") && !/waits? for this machine's approval|Unknown key/.test(l));
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...STRING_KEYS),
          hostile,
          fc.boolean(),
          async ([section, key], value, trusted) => {
            await Bun.write(project.paths.config, `[${section}]\n${key} = ${tomlString(value)}\n`);
            if (trusted) await cli(["trust", "--yes"], project.dir);
            for (const args of [["status"], ["sync", "now"], ["item", "create", "--title", "t"]]) {
              const r = await cli(args, project.dir);
              const label = `${section}.${key}=${JSON.stringify(value).slice(0, 80)} trusted=${trusted}: drover ${args.join(" ")}`;
              expect([0, 1, 2], `${label}\n${r.stderr}`).toContain(r.code);
              if (r.code !== 0) expect(lines(r.stderr), label).toHaveLength(1);
              expect(r.stderr, label).not.toContain("internal error");
            }
            expect(pwned()).toBe("");
          },
        ),
        { numRuns: hostileRuns(12) },
      );
    } finally {
      project.cleanup();
    }
  }, 300_000);

  test("not a table where a table goes, a number where a string goes: one line naming the key and the file", async () => {
    const project = await tempProject();
    try {
      for (const [text, key] of [
        ['server = "x"\n', '"server"'],
        ["[hub]\nremote = 7\n", '"hub.remote"'],
        ['[hub]\nbranch = "../x"\n', '"hub.branch"'],
        ['[server]\nallowed_hosts = ["a b"]\n', '"server.allowed_hosts.0"'],
      ] as const) {
        await Bun.write(project.paths.config, text);
        const r = await cli(["status"], project.dir, { DROVER_HOST: "127.0.0.1" });
        expect({ text, code: r.code }).toEqual({ text, code: 2 });
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(key);
      }
    } finally {
      project.cleanup();
    }
  });
});

describe("runner tables and merge checks", () => {
  test("generated names, commands, env, prompts and checks: accepted or one line naming the key; untrusted, nothing runs", async () => {
    const project = await tempProject();
    const pwned = () => execFileSync("find", [project.dir, "-name", "PWNED"], { encoding: "utf8" }).trim();
    const table = fc.record({
      name: fc.oneof(fc.constantFrom("claude", "codex-2", "a"), hostile),
      preset: fc.oneof(fc.constantFrom("claude", "codex", "command"), hostile),
      command: fc.array(hostile, { maxLength: 4 }),
      env: fc.dictionary(fc.oneof(fc.constantFrom("PATH", "LD_PRELOAD", "A_1"), hostile), hostile, { maxKeys: 3 }),
      prompt: hostile,
      max: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.constant(1)),
      check: fc.array(hostile, { maxLength: 3 }),
      strategy: fc.oneof(fc.constantFrom("merge", "squash", "rebase"), hostile),
    });
    try {
      await fc.assert(
        fc.asyncProperty(table, async (t) => {
          const env = Object.entries(t.env).map(([k, v]) => `${tomlString(k)} = ${tomlString(v)}`);
          const text =
            `[runners.${tomlString(t.name)}]\npreset = ${tomlString(t.preset)}\n` +
            `command = [${t.command.map(tomlString).join(", ")}]\nprompt = ${tomlString(t.prompt)}\nmax = ${t.max}\n` +
            `[runners.${tomlString(t.name)}.env]\n${env.join("\n")}\n` +
            `[merge]\ncheck = [${t.check.map(tomlString).join(", ")}]\nstrategy = ${tomlString(t.strategy)}\npush = true\n`;
          await Bun.write(project.paths.config, text);
          for (const args of [["status"], ["item", "create", "--title", "t"], ["runs", "list"]]) {
            const r = await cli(args, project.dir);
            const label = `${text.slice(0, 300)}\ndrover ${args.join(" ")}`;
            expect([0, 1, 2], `${label}\n${r.stderr}`).toContain(r.code);
            if (r.code !== 0) expect(r.stderr.trim().split("\n"), label).toHaveLength(1);
            expect(r.stderr, label).not.toContain("internal error");
          }
          expect(pwned()).toBe("");
        }),
        { numRuns: hostileRuns(12) },
      );
    } finally {
      project.cleanup();
    }
  }, 300_000);
});

describe("branch names", () => {
  test("checkBranchName follows git check-ref-format, and refuses a leading dash git would read as an option (and `@`, git's HEAD)", () => {
    const names = fc.oneof(
      fc.constantFrom(
        "main",
        "drover/hub",
        "feature/x-1",
        "-x",
        "--max-count=0",
        "a..b",
        "a/.b",
        "a.lock",
        "a//b",
        "/a",
        "a/",
        "@",
        "a@{b",
        "a b",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "ä",
        "a.",
        ".a",
      ),
      fc.stringMatching(/^[-a-z0-9./@{}~^:?*[\\ ]{1,12}$/),
    );
    fc.assert(
      fc.property(names, (name) => {
        let git = true;
        try {
          execFileSync("git", ["check-ref-format", `refs/heads/${name}`], { stdio: "ignore" });
        } catch {
          git = false;
        }
        let ours = true;
        try {
          checkBranchName(name, "hub.branch");
        } catch {
          ours = false;
        }
        expect({ name, ours }).toEqual({ name, ours: git && !name.startsWith("-") && name !== "@" });
      }),
      { numRuns: hostileRuns(150) },
    );
  });
});

/**
 * @module The real agent CLIs for tests: pinned Claude Code and Codex, installed from the npm registry on first use
 * into a cache outside `node_modules` (they are ~400 MB each and no dependency of drover). Two test files may ask at
 * once: each installs into a private temp folder and renames it into place, so a reader never sees half an install.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export type ClientName = "claude" | "codex";

/** The versions the harness was measured against; scenarios may depend on their wire shapes. */
export const CLIENT_VERSIONS = {
  claude: { pkg: "@anthropic-ai/claude-code", version: "2.1.332" },
  codex: { pkg: "@openai/codex", version: "0.171.0" },
} as const satisfies Record<ClientName, { pkg: string; version: string }>;

/** Where installs are kept: `$DROVER_CLIENTS_CACHE`, else `~/.cache/drover-test-clients`. */
export function clientsCacheDir(): string {
  return process.env.DROVER_CLIENTS_CACHE || join(homedir(), ".cache", "drover-test-clients");
}

/**
 * The absolute path of the pinned CLI, installing it first when the cache lacks it. Throws with npm's output
 * when the install fails: a test that needs a client must fail, not skip.
 */
export function ensureClient(name: ClientName): Promise<string> {
  // one install per process even when several tests ask before the first finishes
  let pending = _pending.get(name);
  if (!pending) {
    pending = _ensure(name);
    _pending.set(name, pending);
    pending.catch(() => _pending.delete(name));
  }
  return pending;
}

// --- internal ---

const _run = promisify(execFile);
const _pending = new Map<ClientName, Promise<string>>();
const _COMPLETE = ".drover-complete";

async function _ensure(name: ClientName): Promise<string> {
  const { pkg, version } = CLIENT_VERSIONS[name];
  const root = clientsCacheDir();
  const dir = join(root, `${name}-${version}`);
  const bin = join(dir, "node_modules", ".bin", name);
  // the marker is written inside the temp folder before the rename: a final folder always holds a checked install
  if (existsSync(join(dir, _COMPLETE)) && existsSync(bin)) return bin;

  mkdirSync(root, { recursive: true });
  _sweepStale(root);
  const tmp = join(root, `.tmp-${name}-${version}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    await _npmInstall(tmp, `${pkg}@${version}`);
    const tmpBin = join(tmp, "node_modules", ".bin", name);
    await _checkVersion(tmpBin, version);
    writeFileSync(join(tmp, _COMPLETE), `${pkg}@${version}\n`);
    try {
      renameSync(tmp, dir);
    } catch (err) {
      // another process renamed its copy first (ENOTEMPTY/EEXIST): theirs is as good as ours
      if (!existsSync(join(dir, _COMPLETE))) throw err;
    }
    if (!existsSync(bin)) throw new Error(`Client cache "${dir}" is damaged (no "${bin}"): remove it to reinstall`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

async function _npmInstall(prefix: string, spec: string): Promise<void> {
  mkdirSync(prefix, { recursive: true });
  const args = ["install", "--no-save", "--no-audit", "--no-fund", "--no-package-lock", "--prefix", prefix, spec];
  try {
    // a private npm cache inside the cache root would be 400 MB more; the user's cache is fine to share
    await _run("npm", args, { cwd: prefix, maxBuffer: 16 << 20, timeout: 300_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    // npm's stack frames say nothing about why the registry refused
    const output = (e.stderr || e.stdout || e.message).replace(/^npm error\s+at .*\n/gm, "");
    throw new Error(`Cannot install "${spec}" for the client tests (npm ${args.join(" ")}): ${output}`);
  }
}

async function _checkVersion(bin: string, version: string): Promise<void> {
  let out = "";
  try {
    out = (await _run(bin, ["--version"], { timeout: 60_000 })).stdout;
  } catch (err) {
    throw new Error(`Installed client "${bin}" does not run: ${(err as Error).message}`);
  }
  if (!out.includes(version)) throw new Error(`Installed client "${bin}" reports "${out.trim()}", expected ${version}`);
}

/** Temp folders of installs that died (killed test runs) are ~400 MB each: drop those older than an hour. */
function _sweepStale(root: string): void {
  for (const entry of readdirSync(root)) {
    if (!entry.startsWith(".tmp-")) continue;
    const path = join(root, entry);
    try {
      if (Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { recursive: true, force: true });
    } catch {
      // another process swept it first
    }
  }
}

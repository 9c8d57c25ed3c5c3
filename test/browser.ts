/**
 * The Chromium the browser tests drive with playwright-core, so that `npm ci && npm test` passes on a machine with
 * only Node and git: `CHROMIUM_PATH` if set; else Debian's `/usr/bin/chromium` (preferred: `.ci/run` installs it);
 * else the headless Chromium that the npm package `@sparticuz/chromium` ships, unpacked into the temp folder on
 * first use (about 2 s), with its own fonts and NSS libraries. `DROVER_TEST_NPM_CHROMIUM=1` skips Debian's, to test
 * that fallback on a machine that has it.
 */
import { accessSync, constants, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type Browser, chromium, type LaunchOptions } from "playwright-core";

/** As root with no sandbox, and no connection attempts to Google's hosts (the machine has no network). */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DEBIAN = "/usr/bin/chromium";

/** A headless browser: `options` are playwright's, their `args` added to `FLAGS`. */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  const args = [...FLAGS, ...(options.args ?? [])];
  const system = process.env.CHROMIUM_PATH || (process.env.DROVER_TEST_NPM_CHROMIUM ? undefined : _executable(DEBIAN));
  if (system) return chromium.launch({ ...options, executablePath: system, args });
  const npm = await _npmChromium();
  return chromium.launch({
    ...options,
    executablePath: npm.executablePath,
    args,
    env: { ..._env(options.env), ...npm.env },
  });
}

function _executable(path: string): string | undefined {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/**
 * Unpacks the package's binary, fonts and Amazon Linux libraries (libnss3, libnspr4, libexpat, which a bare Debian
 * lacks) where it always does, `tmpdir()`; later runs find them there. A stamp with the package's version, written
 * last, makes what a run killed mid-unpack left, or an older version's binary, unpack again rather than be used.
 */
async function _npmChromium(): Promise<{ executablePath: string; env: Record<string, string> }> {
  const { default: sparticuz, inflate } = await import("@sparticuz/chromium");
  const pkg = join(dirname(Bun.resolveSync("@sparticuz/chromium", import.meta.dir)), "..");
  const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version as string;
  const tmp = tmpdir();
  const stamp = join(tmp, "chromium.drover-version");
  if (_read(stamp) !== version || !existsSync(join(tmp, "chromium")) || !existsSync(join(tmp, "al2023"))) {
    for (const name of ["chromium.drover-version", "chromium", "fonts", "al2023", "libGLESv2.so"])
      rmSync(join(tmp, name), { recursive: true, force: true });
  }
  const executablePath = await sparticuz.executablePath(join(pkg, "bin"));
  const libs = await inflate(join(pkg, "bin", "al2023.tar.br"));
  writeFileSync(stamp, version);
  return { executablePath, env: { LD_LIBRARY_PATH: join(libs, "lib"), FONTCONFIG_PATH: join(tmp, "fonts") } };
}

function _read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function _env(extra: LaunchOptions["env"]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) if (v !== undefined) env[k] = String(v);
  return env;
}

/**
 * Builds `dist/drover`: one file with the runtime, the code, the watcher's native binding and (later) the
 * dashboard embedded. Flags as SPEC §1; config auto-loading is off so the binary ignores the user's cwd files.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
mkdirSync(join(root, "dist"), { recursive: true });
const args = [
  "build",
  "--compile",
  "--minify",
  "--bytecode",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  `--target=bun-${process.platform}-${process.arch}`,
  "--define",
  'WATCHER_LIBC="glibc"',
  join(root, "cli.ts"),
  "--outfile",
  join(root, "dist", "drover"),
];
const started = performance.now();
const proc = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
if (proc.exitCode !== 0) {
  process.stderr.write(proc.stdout.toString() + proc.stderr.toString());
  process.exit(proc.exitCode ?? 1);
}
console.log(`built dist/drover in ${Math.round(performance.now() - started)} ms`);

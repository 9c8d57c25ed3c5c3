/**
 * @module The command line that runs this drover again — for hooks and notify commands written into other
 * programs' config: `drover` when it is on PATH, else this binary's absolute path (or bun and `cli.ts` when run
 * from source). A hook written as plain `drover` when no `drover` is on PATH silently did nothing.
 */
import { join } from "node:path";

/** This drover's entry point when it runs from source (not `Bun.main`: under `bun test` that is the test file). */
const CLI_SOURCE = join(import.meta.dir, "..", "cli.ts");

export function selfArgv(options: { path?: string } = {}): string[] {
  if (Bun.which("drover", { PATH: options.path ?? process.env.PATH ?? "" })) return ["drover"];
  return Bun.isStandaloneExecutable ? [process.execPath] : [process.execPath, CLI_SOURCE];
}

/** An argv as one shell command line (Claude Code runs hook commands through a shell). */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

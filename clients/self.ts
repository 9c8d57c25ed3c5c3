/**
 * @module The command line that runs this drover again — for hooks and notify commands written into other
 * programs' config: `drover` when it is on PATH, else this binary's absolute path (or bun and `cli.ts` when run
 * from source). A hook written as plain `drover` when no `drover` is on PATH silently did nothing.
 */
import { isAbsolute } from "node:path";

export function selfArgv(options: { path?: string } = {}): string[] {
  if (Bun.which("drover", { PATH: options.path ?? process.env.PATH ?? "" })) return ["drover"];
  const exe = process.execPath;
  const fromSource = /(^|\/)bun(\.exe)?$/.test(exe);
  return fromSource && isAbsolute(Bun.main) ? [exe, Bun.main] : [exe];
}

/** An argv as one shell command line (Claude Code runs hook commands through a shell). */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

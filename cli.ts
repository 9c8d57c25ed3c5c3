#!/usr/bin/env bun
/**
 * @module The `drover` command. Every op is a command (see `cli/ops.ts`); the rest are below. This is the
 * only place that turns errors into output and exit codes: 0 done, 1 refused, 2 bad usage or input,
 * 3 internal error. A drover process runs with umask 077: everything it creates — `.drover/` and all in it,
 * and what the git and agent processes it starts create — is its user's alone (SPEC §12).
 */
import { type CommandDef, defineCommand, runCommand, showUsage } from "citty";
import { builtinCommands } from "./cli/builtins.ts";
import { opCommands } from "./cli/ops.ts";
import { DroverError } from "./core/errors.ts";
import { escapeControls } from "./core/escape.ts";
import { isStoreDamage } from "./core/store.ts";
import { allFeatures, VERSION } from "./runtime.ts";

const _ops = opCommands(allFeatures);
for (const name of Object.keys(builtinCommands)) {
  if (name in _ops) throw new Error(`Command "${name}" is both a built-in and an op group`);
}

export const main = defineCommand({
  meta: {
    name: "drover",
    version: VERSION,
    description: "Coordinates a team of AI coding agents on one git repository",
  },
  subCommands: { ...builtinCommands, ..._ops },
});

/** Runs the CLI with the given arguments and returns the exit code. */
export async function runCli(rawArgs: string[]): Promise<number> {
  try {
    if (rawArgs.some((a) => a === "--help" || a === "-h") || !rawArgs.length) {
      const [cmd, parent] = await _resolve(main, rawArgs);
      await showUsage(cmd, parent);
      return rawArgs.length ? 0 : 2;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      console.log(VERSION);
      return 0;
    }
    await runCommand(main, { rawArgs });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    return _report(err);
  }
}

if (import.meta.main) {
  process.umask(0o077);
  void runCli(process.argv.slice(2)).then((code) => process.exit(code));
}

// --- internal ---

/** The one error line; its message may quote stored text (a title, a file name), so controls are escaped. */
function _report(err: unknown): number {
  if (err instanceof DroverError) {
    console.error(`drover: ${escapeControls(err.message)}`);
    return err.exitCode;
  }
  if (err instanceof Error && err.name === "CLIError") {
    console.error(`drover: ${escapeControls(_plain(err.message))} (see "drover --help")`);
    return 2;
  }
  if (isStoreDamage(err)) {
    console.error(
      `drover: Cannot use ".drover/state.db": it is damaged (${escapeControls((err as Error).message)}): run "drover doctor", which sets it aside and rebuilds it from the hub`,
    );
    return 3;
  }
  console.error(`drover: internal error: ${escapeControls(err instanceof Error ? err.message : String(err))}`);
  if (process.env.DROVER_DEBUG && err instanceof Error) console.error(err.stack);
  return 3;
}

function _plain(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

async function _resolve(
  cmd: CommandDef<any>,
  args: string[],
  parent?: CommandDef<any>,
): Promise<[CommandDef<any>, CommandDef<any> | undefined]> {
  const subs = (await cmd.subCommands) as Record<string, CommandDef<any>> | undefined;
  const name = args.find((a) => !a.startsWith("-"));
  if (subs && name && subs[name]) return _resolve(subs[name], args.slice(args.indexOf(name) + 1), cmd);
  return [cmd, parent];
}

/** @module `drover init`: creates `.drover/` (SPEC §2) in the git repository that holds the working directory. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { ensureMachineId, ensureToken } from "../core/identity.ts";
import { findGitRoot, pathsFor, type Paths } from "../core/paths.ts";
import { openRuntime } from "../runtime.ts";

export interface InitResult {
  paths: Paths;
  machine_id: string;
  created: boolean;
}

export async function initProject(cwd: string, options: { local?: boolean } = {}): Promise<InitResult> {
  const paths = pathsFor(findGitRoot(cwd));
  const created = !existsSync(paths.machine);
  mkdirSync(paths.dir, { recursive: true });
  if (!existsSync(paths.gitignore)) writeFileSync(paths.gitignore, "# drover: only the team config is shared\n*\n!config.toml\n!.gitignore\n");
  if (!existsSync(paths.config)) writeFileSync(paths.config, _configTemplate(options.local ?? false));
  const machine_id = ensureMachineId(paths);
  ensureToken(paths);
  const rt = await openRuntime({ paths, mode: "cli" });
  await rt.close();
  return { paths, machine_id, created };
}

// --- internal ---

function _configTemplate(local: boolean): string {
  return [
    "# drover team configuration: every key is optional; see the README for all keys and defaults.",
    "",
    "[hub]",
    local ? 'remote = ""            # local only: the hub stays on this machine' : '# remote = "origin"    # the git remote that carries the hub branch',
    "",
  ].join("\n");
}

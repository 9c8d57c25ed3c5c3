/** @module `drover init`: creates `.drover/` (SPEC §2) in the git repository that holds the working directory. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { git } from "../core/git.ts";
import { ensureMachineId, ensureToken } from "../core/identity.ts";
import { findGitRoot, type Paths, pathsFor } from "../core/paths.ts";
import { approve } from "../core/trust.ts";
import { openRuntime } from "../runtime.ts";

export interface InitResult {
  paths: Paths;
  machine_id: string;
  created: boolean;
  /** With a remote: whether the hub branch was joined, created there, or is waiting for the remote. */
  hub: "local" | "joined" | "pushed" | "offline";
  hub_error?: string;
  /** Keys of the committed config approved on this machine (`--trust`). */
  approved: string[];
  /** The config's warnings (unknown keys, values waiting for approval), for the caller to show. */
  warnings: string[];
}

export async function initProject(
  cwd: string,
  options: { local?: boolean; trust?: boolean } = {},
): Promise<InitResult> {
  const paths = pathsFor(findGitRoot(cwd));
  const created = !existsSync(paths.machine);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.gitignore))
    writeFileSync(paths.gitignore, "# drover: only the team config is shared\n*\n!config.toml\n!.gitignore\n");
  // a repository with no "origin" has nobody to share with yet: keep the hub local rather than waiting forever
  if (!existsSync(paths.config)) writeFileSync(paths.config, _configTemplate(options.local || !_hasOrigin(paths.root)));
  const machine_id = ensureMachineId(paths);
  ensureToken(paths);
  let rt = await openRuntime({ paths, mode: "cli" });
  const approved = options.trust ? rt.ctx.untrusted.map((u) => u.key) : [];
  if (approved.length) {
    approve(rt.ctx.db, rt.ctx.untrusted, rt.ctx.clock);
    await rt.close();
    rt = await openRuntime({ paths, mode: "cli" });
  }
  const result = { paths, machine_id, created, approved, warnings: rt.warnings };
  try {
    if (!rt.ctx.config.hub.remote) return { ...result, hub: "local" };
    // join the team's branch (or create it there); offline is fine: the next sync does it
    const round = await rt.ctx.services.sync.round({ force: true });
    return { ...result, hub: round.pushed && round.fetched === 0 ? "pushed" : "joined" };
  } catch (err) {
    return { ...result, hub: "offline", hub_error: (err as Error).message };
  } finally {
    await rt.close();
  }
}

// --- internal ---

function _hasOrigin(root: string): boolean {
  const r = git(root, ["config", "--get", "remote.origin.url"]);
  return r.ok && r.out !== "";
}

function _configTemplate(local: boolean): string {
  return [
    "# drover team configuration: every key is optional; see the README for all keys and defaults.",
    "",
    "[hub]",
    local
      ? 'remote = ""            # local only: the hub stays on this machine (set a remote name or URL to share it)'
      : '# remote = "origin"    # the git remote that carries the hub branch',
    "",
  ].join("\n");
}

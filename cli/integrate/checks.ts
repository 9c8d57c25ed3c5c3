/**
 * @module `drover integrate --check`: what each agent client will use, tried as it would use it. The URL Claude
 * Code reads from `.mcp.json` and the one Codex reads from its config are asked with the token; a URL that does
 * not answer (the daemon restarted on another port) fails the check and names the command that fixes it.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { droverHookCommand, readJsonObject, TOKEN_ENV } from "../../clients/claude.ts";
import { readDaemon } from "../../core/daemon-file.ts";
import { readToken } from "../../core/identity.ts";
import type { Paths } from "../../core/paths.ts";
import { type CodexSettings, NOTIFY_WRAPPER, readCodexConfig } from "./codex.ts";
import { MD_MARKERS, readBlock } from "./text-blocks.ts";

export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

/** The Codex config a user's Codex reads: `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`. */
export function codexConfigFile(): string {
  return join(process.env.CODEX_HOME || join(homedir(), ".codex"), "config.toml");
}

export async function integrationChecks(paths: Paths, options: { codexConfig?: string } = {}): Promise<Check[]> {
  const token = process.env[TOKEN_ENV] || _safe(() => readToken(paths)) || "";
  const daemon = readDaemon(paths);
  const checks: Check[] = [];
  const hook = droverHookCommand(paths.root);
  checks.push({
    check: "claude hooks",
    ok: hook !== null,
    detail: hook ? `.claude settings run "${hook}"` : "not installed (drover integrate claude)",
  });
  const mcpJson = readJsonObject(join(paths.root, ".mcp.json"));
  const servers = mcpJson && "doc" in mcpJson ? mcpJson.doc.mcpServers : undefined;
  const mcp = (servers as Record<string, { url?: string }> | undefined)?.drover;
  checks.push(
    mcp?.url
      ? await _tryUrl("claude mcp", mcp.url, {
          token,
          daemon: daemon?.url ?? undefined,
          fix: "drover integrate claude",
        })
      : { check: "claude mcp", ok: false, detail: "not registered in .mcp.json (drover integrate claude)" },
  );
  const file = options.codexConfig ?? codexConfigFile();
  const codex = readCodexConfig(file);
  if (codex?.url || codex?.notify) {
    const fix = `drover integrate codex --write ${file}`;
    checks.push(await _codexMcp(file, codex, { token, daemon: daemon?.url ?? undefined, fix }));
    const notify = codex.notify ?? [];
    const ours = notify.join(" ").includes("hook codex") || notify.some((a) => a.endsWith(`/${NOTIFY_WRAPPER}`));
    checks.push({
      check: "codex notify",
      ok: ours,
      detail: ours ? `runs ${JSON.stringify(notify)}` : `${file} does not run drover's notify hook (${fix})`,
    });
  }
  const md = ["AGENTS.md", "CLAUDE.md"].filter((f) => readBlock(join(paths.root, f), MD_MARKERS) !== null);
  checks.push({
    check: "agent instructions",
    ok: md.length > 0,
    detail: md.length ? md.join(", ") : "none (drover integrate agents-md)",
  });
  checks.push({
    check: "token env",
    ok: true, // the shell running the check is not the agent's: said, not failed
    detail: process.env[TOKEN_ENV]
      ? `$${TOKEN_ENV} is set`
      : `$${TOKEN_ENV} is not set in this shell: agents need it (export ${TOKEN_ENV}="$(cat ${paths.token})")`,
  });
  checks.push(
    daemon?.url
      ? await _tryUrl("daemon", `${daemon.url}/mcp`, { token, daemon: daemon.url, fix: "drover serve" })
      : { check: "daemon", ok: false, detail: "not running (drover serve)" },
  );
  return checks;
}

// --- internal ---

/** Codex's MCP entry, tried as Codex will use it: with the token from the variable the config names. */
async function _codexMcp(
  file: string,
  codex: CodexSettings,
  options: { token: string; daemon?: string; fix: string },
): Promise<Check> {
  const failed = (why: string) => ({ check: "codex mcp", ok: false, detail: `${file} ${why} (${options.fix})` });
  if (!codex.url) return failed("has no [mcp_servers.drover]");
  if (codex.tokenEnv !== TOKEN_ENV) {
    const from = codex.tokenEnv ? `from "$${codex.tokenEnv}"` : "from no variable";
    return failed(`sends the token ${from}, not from "$${TOKEN_ENV}"`);
  }
  return _tryUrl("codex mcp", codex.url, options);
}

/** Asks the drover behind an MCP URL for its ops, with the token, as a client of that URL would reach it. */
async function _tryUrl(
  check: string,
  url: string,
  options: { token: string; daemon?: string; fix: string },
): Promise<Check> {
  const base = url.replace(/\/mcp\/?$/, "");
  const res = await fetch(`${base}/api/ops`, {
    headers: { authorization: `Bearer ${options.token}` },
    signal: AbortSignal.timeout(2000),
  }).catch(() => null);
  if (res?.ok) return { check, ok: true, detail: `${url} answers with the token` };
  const now = options.daemon && options.daemon !== base ? `; the daemon runs at ${options.daemon}` : "";
  const why = res ? `refuses the token (HTTP ${res.status})` : "does not answer";
  return { check, ok: false, detail: `${url} ${why}${now}: run "${options.fix}"` };
}

function _safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

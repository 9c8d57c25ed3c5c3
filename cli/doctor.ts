/**
 * @module `drover doctor`: checks what drover needs on this machine (git, the native file watcher, SQLite)
 * and the state of this project, one line each.
 */
import { Database } from "bun:sqlite";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../core/config.ts";
import { readDaemon } from "../core/daemon-file.ts";
import { findProject } from "../core/paths.ts";
import { isStoreDamage, openStore, readDamageReport, type StoreDamage } from "../core/store.ts";
import { untrustedLine } from "../core/trust.ts";
import { loadWatcher } from "../core/watcher.ts";
import { openRuntime } from "../runtime.ts";

export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

export async function runDoctor(cwd: string): Promise<Check[]> {
  return [
    await _check("git", () => execFileSync("git", ["--version"], { encoding: "utf8" }).trim()),
    await _check("watcher", _watcherSeesAFile),
    await _check("sqlite", () => {
      const dir = mkdtempSync(join(tmpdir(), "drover-doctor-"));
      try {
        const db = openStore(join(dir, "t.db"));
        const mode = db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()!.journal_mode;
        db.close();
        return `journal_mode ${mode}`;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    await _check("project", async () => {
      const paths = findProject(cwd);
      const { warnings } = await loadConfig(paths.config);
      return [paths.root, ...warnings].join("; ");
    }),
    await _check("state", () => _checkState(cwd)),
    await _check("trust", async () => {
      const rt = await openRuntime({ paths: findProject(cwd), mode: "cli" });
      try {
        if (rt.ctx.untrusted.length) throw new Error(untrustedLine(rt.ctx.untrusted, rt.ctx.paths.config));
        return "every value with effects in the committed config is approved on this machine";
      } finally {
        await rt.close();
      }
    }),
    await _check("daemon", () => {
      const d = readDaemon(findProject(cwd));
      return d ? `running, pid ${d.pid}, ${d.url}` : "not running";
    }),
  ];
}

// --- internal ---

async function _check(check: string, fn: () => string | Promise<string>): Promise<Check> {
  try {
    return { check, ok: true, detail: await fn() };
  } catch (err) {
    return { check, ok: false, detail: (err as Error).message };
  }
}

/**
 * `state.db`, every page checked. Damage found with no daemon running is repaired here (set aside, rebuilt from the
 * hub); a running daemon holds the file open, so it is told to restart instead (it checks at start).
 */
async function _checkState(cwd: string): Promise<string> {
  const paths = findProject(cwd);
  const lost = (d: StoreDamage) => `${d.lost.join(", ")} could not be rebuilt (the damaged file is "${d.moved_to}")`;
  if (readDaemon(paths)) {
    const db = new Database(paths.db, { readonly: true });
    try {
      const verdict = db.query<{ quick_check: string }, []>("PRAGMA quick_check(1)").get()?.quick_check;
      if (verdict !== "ok")
        throw new Error(`damaged (${verdict}): restart the daemon, which sets it aside and rebuilds it from the hub`);
    } catch (err) {
      if (isStoreDamage(err))
        throw new Error(
          `damaged (${(err as Error).message}): restart the daemon, which sets it aside and rebuilds it from the hub`,
        );
      throw err;
    } finally {
      db.close();
    }
  } else {
    const rt = await openRuntime({ paths, mode: "cli", deepCheck: true });
    await rt.reconcile(); // what the hub holds, back in the new file now
    await rt.close();
    if (rt.damage)
      throw new Error(`was damaged (${rt.damage.reason}): set aside and rebuilt from the hub; ${lost(rt.damage)}`);
  }
  const earlier = readDamageReport(paths.db);
  return earlier
    ? `ok; rebuilt from the hub at ${earlier.at} after damage (${earlier.reason}): ${lost(earlier)}`
    : "ok (every page checked)";
}

async function _watcherSeesAFile(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "drover-doctor-"));
  const seen = Promise.withResolvers<string>();
  const sub = await loadWatcher().subscribe(dir, (err, events) =>
    err ? seen.reject(err) : seen.resolve(events[0]?.type ?? "?"),
  );
  try {
    writeFileSync(join(dir, "probe"), "x");
    const timeout = setTimeout(() => seen.reject(new Error("no event within 2 s")), 2000);
    const type = await seen.promise;
    clearTimeout(timeout);
    return `native events (${type})`;
  } finally {
    await sub.unsubscribe();
    rmSync(dir, { recursive: true, force: true });
  }
}

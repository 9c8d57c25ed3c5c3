/** @module Running CLI work against the project in this process, and nudging a running daemon. */
import { readDaemon } from "../core/daemon-file.ts";
import { escapeControls } from "../core/escape.ts";
import { readToken } from "../core/identity.ts";
import { findProject, type Paths } from "../core/paths.ts";
import { openRuntime, type Runtime } from "../runtime.ts";

/** Opens the project's runtime in CLI mode, runs `fn`, closes it, and tells the daemon to publish. */
export async function withRuntime<R>(fn: (rt: Runtime) => Promise<R>, options: { paths?: Paths } = {}): Promise<R> {
  const rt = await openRuntime({ paths: options.paths ?? findProject(), mode: "cli" });
  for (const w of rt.warnings) console.error(`drover: ${escapeControls(w)}`);
  try {
    return await fn(rt);
  } finally {
    await rt.close();
    await notifyDaemon(rt.ctx.paths);
  }
}

/** Asks a running daemon to publish the events this process left for it; silent when none runs. */
export async function notifyDaemon(paths: Paths): Promise<void> {
  const daemon = readDaemon(paths);
  if (!daemon?.url) return;
  try {
    await fetch(`${daemon.url}/api/relay`, {
      method: "POST",
      headers: { authorization: `Bearer ${readToken(paths)}` },
      signal: AbortSignal.timeout(500),
    });
  } catch {
    // the daemon drains on its next tick anyway
  }
}

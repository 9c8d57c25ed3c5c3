/**
 * P4 crash safety: a daemon that syncs after every op is killed with SIGKILL at random moments, 24 times,
 * while creates and usage reports are in flight. After a last restart it must converge with the remote, and
 * the remote must hold every op that was answered exactly once (and none twice).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import type { Paths } from "../core/paths.ts";
import { parseCommitMessage } from "../hub/apply.ts";
import { bareRepo, type GitServer, startGitServer } from "./git-server.ts";
import { api, BUN, CLI, startDaemonProcess } from "./helpers.ts";
import { joinedProject, remoteGit } from "./sync-machines.ts";

const ROUNDS = 24;
/** Clients per round, each sending ops one after another until the kill: some are always cut off. */
const CLIENTS = 8;

let remote: { root: string; path: string };
let server: GitServer;
let dir: string;
let paths: Paths;

beforeAll(async () => {
  remote = bareRepo();
  server = startGitServer(remote.root);
  ({ dir, paths } = await joinedProject(server.url("remote.git")));
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(remote.root, { recursive: true, force: true });
});

test(`kill -9 at random points, ${ROUNDS} rounds: converges, nothing lost, nothing applied twice`, async () => {
  let daemon = await startDaemonProcess([BUN, CLI], paths);
  const ledger = (await api(daemon.url, daemon.token, "/api/items", { title: "ledger" })).body as { id: string };
  const answered = new Set<string>();
  const unanswered = new Set<string>();
  let reportsAnswered = 0;
  let reportsSent = 0;
  const refusals: string[] = [];

  for (let round = 0; round < ROUNDS; round++) {
    const d = daemon;
    const inflight = Array.from({ length: CLIENTS }, async (_, k) => {
      for (let n = 0; ; n++) {
        const title = `r${round}-c${k}-${n}`;
        const isReport = k % 2 === 1;
        if (isReport) reportsSent++;
        else unanswered.add(title);
        try {
          const res = isReport
            ? await api(d.url, d.token, "/api/ops/usage.report", {
                agent: "a1",
                item: ledger.id,
                input_tokens: 1,
                output_tokens: 1,
              })
            : await api(d.url, d.token, "/api/items", { title });
          if (res.status >= 300) return void refusals.push(`${res.status}: ${JSON.stringify(res.body)}`);
          if (isReport) reportsAnswered++;
          else {
            unanswered.delete(title);
            answered.add(title);
          }
        } catch {
          return; // killed before it answered: may or may not have been applied, but never twice
        }
      }
    });
    await Bun.sleep(50 + Math.random() * 400);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    await Promise.all(inflight);
    daemon = await startDaemonProcess([BUN, CLI], paths);
  }

  // converge: rounds until nothing waits and this hub sits on the remote's head
  let status: { head: string; pending_ops: number } = { head: "", pending_ops: -1 };
  for (let i = 0; i < 5 && status.pending_ops !== 0; i++) {
    await api(daemon.url, daemon.token, "/api/sync", {});
    status = (await api(daemon.url, daemon.token, "/api/sync")).body as typeof status;
  }
  expect(status.pending_ops).toBe(0);
  expect(status.head).toBe(remoteGit(remote.path, "rev-parse", "drover/hub"));
  await daemon.stop();

  // the remote: every answered create once, no op id twice, the ledger's usage = the reports it carries
  const opIds = new Map<string, number>();
  for (const message of remoteGit(remote.path, "log", "--format=%B%x00", "drover/hub").split("\0")) {
    for (const op of parseCommitMessage(message)) opIds.set(op.id, (opIds.get(op.id) ?? 0) + 1);
  }
  expect([...opIds.values()].filter((n) => n > 1)).toEqual([]);
  const titles = new Map<string, number>();
  const files = remoteGit(remote.path, "ls-tree", "-r", "--name-only", "drover/hub")
    .split("\n")
    .filter((p) => p.startsWith("items/"));
  let ledgerUsage = 0;
  for (const path of files) {
    const item = JSON.parse(remoteGit(remote.path, "show", `drover/hub:${path}`));
    titles.set(item.title, (titles.get(item.title) ?? 0) + 1);
    if (item.id === ledger.id) ledgerUsage = item.usage?.reports ?? 0;
  }
  expect(refusals).toEqual([]);
  // the kills did land mid-op: creates and reports were cut off
  expect(unanswered.size).toBeGreaterThan(0);
  expect(reportsSent).toBeGreaterThan(reportsAnswered);
  for (const title of answered) expect({ title, copies: titles.get(title) }).toEqual({ title, copies: 1 });
  for (const title of unanswered) expect((titles.get(title) ?? 0) <= 1).toBe(true);
  expect(ledgerUsage).toBeGreaterThanOrEqual(reportsAnswered);
  expect(ledgerUsage).toBeLessThanOrEqual(reportsSent);
  console.log(
    `crash: ${ROUNDS} kills; ${answered.size} creates answered, ${unanswered.size} cut off; ${reportsAnswered}/${reportsSent} reports answered, ${ledgerUsage} on the remote`,
  );
}, 300_000);

/**
 * The end of a chaos run: bring every part back, let the system go quiet, then hold it to P1–P3 (P4 is that
 * they hold after the kills), P5 (no 5xx while the remote was away), timers fired at most once per
 * occurrence, `once` triggers at most once, and the gateway seeing every machine.
 */
import { Database } from "bun:sqlite";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { CryptoHasher } from "bun";
import { BINARY } from "../test/helpers.ts";
import { checkGrants, grantLog, itemHistory, remoteGit, remoteHistory } from "../test/sync-machines.ts";
import type { Ledger } from "./agents.ts";
import { INTRUDER_PREFIX, restart } from "./faults.ts";
import { type ChaosMachine, GATEWAY_TOKEN, PROJECT, type World } from "./world.ts";

export interface Verdict {
  violations: string[];
  figures: Record<string, number>;
}

/** Everything back up, every lease and every agent lapsed, then sync rounds until nothing is left to send. */
export async function settle(world: World): Promise<boolean> {
  world.remote.server.start();
  for (const m of world.machines) if (!m.proc) await restart(world, m);
  // past every lease, the stale threshold and the done retention (4 h), then past the takeover grace: the
  // ops time alone makes all happen now, not one by one while the checks run
  world.jumpClock(6 * 3600_000);
  await Bun.sleep(2500);
  world.jumpClock(120_000);
  await Bun.sleep(2500);
  const deadline = Date.now() + 120_000;
  let quiet = 0;
  while (Date.now() < deadline && quiet < 3) {
    for (const m of world.machines) await _api(m, "/api/sync", {}).catch(() => null);
    const head = remoteGit(world.remote.path, "rev-parse", "drover/hub");
    const statuses = await Promise.all(world.machines.map((m) => _api(m, "/api/sync").catch(() => null)));
    quiet = statuses.every((s) => s?.head === head && s.pending_ops === 0) ? quiet + 1 : 0;
    await Bun.sleep(1000);
  }
  return quiet >= 3;
}

export async function check(world: World, ledger: Ledger): Promise<Verdict> {
  const violations: string[] = [...ledger.serverErrors];
  const head = remoteGit(world.remote.path, "rev-parse", "drover/hub");

  // P2 and the P1 of answered grants and creates, from the remote's whole history
  const remote = remoteHistory(world.remote.path);
  const { grants, violations: grantViolations } = checkGrants(remote);
  violations.push(...grantViolations);
  const items = itemHistory(remote);
  for (const id of ledger.created)
    if (!items.has(id)) violations.push(`P1: item "${id}" was answered as created but is not on the remote`);
  const log = grantLog(remote);
  for (const g of ledger.grants) {
    const holder = log.get(g.item)?.[g.fence - 1];
    if (holder !== g.agent)
      violations.push(
        `P1: grant of "${g.item}" to "${g.agent}" (fence ${g.fence}) answered confirmed at ${g.at}; the remote's grant ${g.fence} went to ${holder ? `"${holder}"` : "nobody"}`,
      );
  }

  // P1 (nothing left waiting), P3 (every hub tree equals the remote's), crashes, timers and triggers per machine
  const remoteTree = _remoteTree(world.remote.path, head);
  // an upgraded machine also holds what every machine's presence ref carries (heartbeats, SPEC §15); an older one
  // only the shared branch, where it and its like still put theirs
  const presence = _presenceRefs(world.remote.path);
  let firings = 0;
  for (const m of world.machines) {
    const status = await _api(m, "/api/sync").catch(() => null);
    if (!status) violations.push(`machine ${m.index}: does not answer at the end`);
    else if (status.head !== head || status.pending_ops !== 0)
      violations.push(
        `P1/P3: machine ${m.index} at ${status.head} with ${status.pending_ops} ops waiting; remote at ${head}`,
      );
    for (const code of m.crashes)
      violations.push(`machine ${m.index}: daemon exited by itself with code ${code} (see machine-${m.index}.log)`);
    // what a teammate pushed that no drover writes is listed by the machine, and never on its disk
    const invalid = ((status?.invalid_files ?? []) as Array<{ path: string }>).map((f) => f.path);
    const unlisted = (files: Map<string, string>, prefix = "") =>
      [...files].filter(([path]) => !invalid.some((p) => prefix + path === p || (prefix + path).startsWith(p + "/")));
    const readable = new Map(unlisted(remoteTree));
    if (m.binary === BINARY)
      for (const [ref, files] of presence)
        for (const [path, oid] of unlisted(files, `drover/presence/${ref}:`)) readable.set(path, oid);
    const diff = _treeDiff(readable, _workingTree(m.paths.hub));
    if (diff.length)
      violations.push(`P3: machine ${m.index}'s hub files differ from the remote: ${diff.slice(0, 5).join(", ")}`);
    firings += _checkTimersAndTriggers(world, m, ledger, violations);
  }
  await _checkGateway(world, violations);

  const commits = Number(remoteGit(world.remote.path, "rev-list", "--count", "drover/hub"));
  return {
    violations,
    figures: {
      commits,
      presence_refs: [...presence.keys()].filter((ref) => !ref.startsWith(INTRUDER_PREFIX)).length,
      // the agents' own (hostile pushes put other things under heartbeats/)
      heartbeats_on_shared_branch: [...remoteTree.keys()].filter((p) => /^heartbeats\/m\d+-agent\d+\.json$/.test(p))
        .length,
      grants,
      grants_confirmed_to_agents: ledger.grants.length,
      items_created: ledger.created.size,
      one_shot_timers: ledger.timers.length,
      timer_firings: firings,
      trigger_deliveries: world.deliveries.filter((d) => d.path.startsWith("/trigger/")).length,
      ...ledger.answers,
    },
  };
}

// --- internal ---

async function _api(m: ChaosMachine, path: string, body?: unknown): Promise<any> {
  const res = await fetch(m.url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${m.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return res.json();
}

/** Each occurrence recorded once and delivered at most once; each answered one-shot now due has fired; each `once` trigger at most once. */
function _checkTimersAndTriggers(world: World, m: ChaosMachine, ledger: Ledger, violations: string[]): number {
  const db = new Database(m.paths.db, { readonly: true });
  try {
    const rows = db
      .query<{ timer_id: string; due_at: number; n: number }, []>(
        "SELECT timer_id, due_at, count(*) AS n FROM timer_firings GROUP BY timer_id, due_at",
      )
      .all();
    for (const r of rows)
      if (r.n > 1)
        violations.push(
          `timers: machine ${m.index} recorded ${r.n} firings of "${r.timer_id}" due ${new Date(r.due_at).toISOString()}`,
        );
    const recorded = new Set(rows.map((r) => r.timer_id));
    const delivered = new Map<string, number>();
    for (const d of world.deliveries.filter((d) => d.path === `/timer/${m.index}`)) {
      const key = `${d.body?.timer?.timer_id} due ${d.body?.timer?.due_at}`;
      delivered.set(key, (delivered.get(key) ?? 0) + 1);
    }
    for (const [key, n] of delivered)
      if (n > 1) violations.push(`timers: machine ${m.index} delivered "${key}" ${n} times`);
    for (const t of ledger.timers.filter((t) => t.machine === m.index)) {
      if (!recorded.has(t.id))
        violations.push(
          `timers: one-shot "${t.id}" on machine ${m.index}, due ${new Date(t.due).toISOString()}, never fired`,
        );
    }
    const byLabel = new Map<string, number>();
    for (const d of world.deliveries.filter((d) => d.path.startsWith(`/trigger/${m.index}/`)))
      byLabel.set(d.path, (byLabel.get(d.path) ?? 0) + 1);
    for (const [path, n] of byLabel)
      if (n > 1) violations.push(`triggers: once trigger at "${path}" delivered ${n} times`);
    return rows.length;
  } finally {
    db.close();
  }
}

/** The gateway sees every machine connected and, once relays settle, the remote's items. */
async function _checkGateway(world: World, violations: string[]): Promise<void> {
  const headers = { authorization: `Bearer ${GATEWAY_TOKEN}` };
  // item files only: regular files at item paths (a teammate's junk under items/ is no item)
  const expected = remoteGit(world.remote.path, "ls-tree", "-r", "drover/hub", "items/")
    .split("\n")
    .filter((l) => /^100644 blob [0-9a-f]+\titems\/([a-z2-7]{2})\/\1[a-z2-7]{3,30}\.json$/.test(l)).length;
  let last = "";
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const projects = (await (await fetch(`${world.gateway.url}/api/projects`, { headers })).json()) as any[];
    const items = (await (
      await fetch(`${world.gateway.url}/api/projects/${PROJECT}/items`, { headers })
    ).json()) as any[];
    const p = projects.find((x) => x.name === PROJECT);
    const connected = p?.machines.filter((x: any) => x.connected).length ?? 0;
    last = `online ${p?.online}, ${connected} of ${world.machines.length} machines connected, ${items.length} of ${expected} items`;
    if (p?.online && connected === world.machines.length && items.length === expected) return;
    await Bun.sleep(500);
  }
  violations.push(`gateway: ${last}`);
}

function _remoteTree(bare: string, head: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of remoteGit(bare, "ls-tree", "-r", "--full-tree", head).split("\n").filter(Boolean)) {
    const [meta, path] = line.split("\t");
    out.set(path!, meta!.split(" ")[2]!);
  }
  return out;
}

/** Every presence ref's files, by the ref's machine name. */
function _presenceRefs(bare: string): Map<string, Map<string, string>> {
  const prefix = "refs/heads/drover/presence/";
  const refs = remoteGit(bare, "for-each-ref", "--format=%(refname)", prefix).split("\n").filter(Boolean);
  return new Map(refs.map((ref) => [ref.slice(prefix.length), _remoteTree(bare, ref)]));
}

function _workingTree(hub: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === ".git" || e.name.endsWith(".tmp")) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else {
        const bytes = readFileSync(path);
        out.set(
          relative(hub, path),
          new CryptoHasher("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex"),
        );
      }
    }
  };
  walk(hub);
  return out;
}

function _treeDiff(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [path, oid] of a) if (b.get(path) !== oid) out.push(b.has(path) ? `${path} differs` : `${path} missing`);
  for (const path of b.keys()) if (!a.has(path)) out.push(`${path} extra`);
  return out;
}

/**
 * Scripted agents for the chaos run: each talks to its machine's daemon over HTTP the way a coding agent would —
 * heartbeats, `item.next`, moves along the pipeline with its fence, usage reports, new items, timers and `once`
 * triggers — and writes down every answer the checks later hold the system to.
 */
import type { ChaosMachine, World } from "./world.ts";

export interface Ledger {
  /** Ids of items whose `item.create` was answered. */
  created: Set<string>;
  /** Grants answered `confirmed: true`: the remote's history must hold each. */
  grants: Array<{ item: string; agent: string; fence: number; at: string }>;
  /** One-shot timers whose `timer.add` was answered, by machine. */
  timers: Array<{ machine: number; id: string; due: number }>;
  answers: { ok: number; refused: number; unconfirmed: number; unreachable: number };
  /** Answers with a 5xx status: each is a violation. */
  serverErrors: string[];
}

export function createLedger(): Ledger {
  return {
    created: new Set(),
    grants: [],
    timers: [],
    answers: { ok: 0, refused: 0, unconfirmed: 0, unreachable: 0 },
    serverErrors: [],
  };
}

export interface Answer {
  status: number;
  body: any;
}

/** Runs an op on a machine; null when the daemon is not there (killed, restarting) or did not answer in time. */
export async function callOp(
  m: ChaosMachine,
  op: string,
  args: Record<string, unknown>,
  ledger: Ledger,
): Promise<Answer | null> {
  try {
    const res = await fetch(`${m.url}/api/ops/${op}`, {
      method: "POST",
      headers: { authorization: `Bearer ${m.token}`, "content-type": "application/json" },
      body: JSON.stringify(args),
      signal: AbortSignal.timeout(40_000),
    });
    const body = await res.json();
    if (res.status >= 500)
      ledger.serverErrors.push(
        `machine ${m.index}: ${op} answered ${res.status} ${JSON.stringify(body).slice(0, 300)}`,
      );
    else if (res.status >= 400) ledger.answers.refused++;
    else if (body?.confirmed === false) ledger.answers.unconfirmed++;
    else ledger.answers.ok++;
    return { status: res.status, body };
  } catch {
    ledger.answers.unreachable++;
    return null;
  }
}

const FLOW = ["coding", "qa", "merge", "done"] as const;

/** One agent's loop until `stop()` says so. */
export async function runAgent(
  world: World,
  m: ChaosMachine,
  options: { name: string; ledger: Ledger; random: () => number; stop: () => boolean },
) {
  const { name: agent, ledger, random } = options;
  const call = (op: string, args: Record<string, unknown>) => callOp(m, op, args, ledger);
  let held: { id: string; fence: number; stage: number } | null = null;
  let serial = 0;
  while (!options.stop()) {
    const roll = random();
    if (roll < 0.12) {
      const res = await call("item.create", {
        title: `${agent} task ${serial++}`,
        priority: Math.floor(random() * 3),
        labels: ["chaos"],
      });
      if (res?.status === 200) ledger.created.add(res.body.id);
    } else if (roll < 0.15) {
      await addOneShotTimer(world, m, { label: `${agent} reminder`, secs: 5 + Math.floor(random() * 90), ledger });
    } else if (roll < 0.17) {
      await addOnceTrigger(world, m, `${agent}-${serial++}`, ledger);
    } else if (!held) {
      const res = await call("item.next", { agent });
      if (res?.status === 200 && res.body.item) {
        held = { id: res.body.item.id, fence: res.body.fence, stage: 0 };
        if (res.body.confirmed)
          ledger.grants.push({ item: held.id, agent, fence: held.fence, at: new Date().toISOString() });
      }
    } else if (roll < 0.22) {
      await call("item.release", { id: held.id, agent, fence: held.fence });
      held = null;
    } else {
      const to = FLOW[held.stage + 1]!;
      const res = await call("item.move", { id: held.id, to, agent, fence: held.fence });
      if (res?.status === 200) {
        held.stage++;
        await call("usage.report", {
          agent,
          item: held.id,
          model: "chaos",
          input_tokens: 100,
          output_tokens: 10,
          cost_usd: 0.01,
        });
        if (to === "done") held = null;
      } else if (res && res.status < 500) held = null; // refused: lost the lease, the fence or the stage
    }
    await call("heartbeat", { agent, ...(held ? { item: held.id } : {}) });
    await Bun.sleep(30 + random() * 150);
  }
}

/** A one-shot timer that reports to the sink; the checks hold each answered one to firing (once). */
export async function addOneShotTimer(
  world: World,
  m: ChaosMachine,
  options: { label: string; secs: number; ledger: Ledger },
): Promise<void> {
  const res = await callOp(
    m,
    "timer.add",
    { label: options.label, in: `${options.secs}s`, action: { webhook: { url: `${world.sinkUrl}/timer/${m.index}` } } },
    options.ledger,
  );
  if (res?.status === 200)
    options.ledger.timers.push({ machine: m.index, id: res.body.id, due: Date.parse(res.body.next_fire_at) });
}

/** A `once` trigger on the next move into qa; it reports to the sink under its own label. */
export async function addOnceTrigger(world: World, m: ChaosMachine, label: string, ledger: Ledger): Promise<void> {
  await callOp(
    m,
    "trigger.add",
    {
      label,
      mode: "once",
      on: { event: "transition", to: "qa" },
      action: { webhook: { url: `${world.sinkUrl}/trigger/${m.index}/${label}`, body: { item: "$event.item_id" } } },
    },
    ledger,
  );
}

/**
 * @module What the gateway knows: per project, per machine, the last snapshot and the events since. A
 * machine's state is replaced by each snapshot; events are applied only when newer than that snapshot (events
 * queued during an outage may arrive after it). Machines of one project share a hub, so agents and items are
 * merged by id, the freshest winning.
 */

export const OFFLINE_AFTER_MS = 30_000;

interface AgentView {
  agent_id: string;
  status: string;
  last_heartbeat: string | null;
  [k: string]: unknown;
}

interface ItemView {
  id: string;
  stage: string;
  updated_at: string;
  [k: string]: unknown;
}

interface Machine {
  relays: number;
  lastSeen: number;
  snapshotAt: string;
  agents: Map<string, AgentView>;
  items: Map<string, ItemView>;
}

export interface GatewayState {
  connect(project: string, machine: string, now: number): void;
  disconnect(project: string, machine: string, now: number): void;
  snapshot(project: string, machine: string, snap: { at: string; agents?: unknown; items?: unknown }, now: number): void;
  event(project: string, machine: string, event: Record<string, unknown>, now: number): void;
  projects(now: number): Array<Record<string, unknown>>;
  agents(project: string): AgentView[];
  items(project: string): ItemView[];
}

export function createGatewayState(names: string[]): GatewayState {
  const projects = new Map(names.map((n) => [n, new Map<string, Machine>()]));

  function machine(project: string, id: string): Machine {
    const machines = projects.get(project)!;
    let m = machines.get(id);
    if (!m) machines.set(id, (m = { relays: 0, lastSeen: 0, snapshotAt: "", agents: new Map(), items: new Map() }));
    return m;
  }

  function merged<T>(project: string, pick: (m: Machine) => Map<string, T>, fresher: (a: T, b: T) => boolean): T[] {
    const out = new Map<string, T>();
    for (const m of projects.get(project)?.values() ?? []) {
      for (const [id, v] of pick(m)) {
        const have = out.get(id);
        if (!have || fresher(v, have)) out.set(id, v);
      }
    }
    return [...out.values()];
  }

  const state: GatewayState = {
    connect(project, id, now) {
      const m = machine(project, id);
      m.relays++;
      m.lastSeen = now;
    },
    disconnect(project, id, now) {
      const m = machine(project, id);
      m.relays = Math.max(0, m.relays - 1);
      m.lastSeen = now;
    },
    snapshot(project, id, snap, now) {
      const m = machine(project, id);
      m.lastSeen = now;
      m.snapshotAt = snap.at;
      m.agents = new Map((Array.isArray(snap.agents) ? (snap.agents as AgentView[]) : []).map((a) => [a.agent_id, a]));
      m.items = new Map((Array.isArray(snap.items) ? (snap.items as ItemView[]) : []).map((i) => [i.id, i]));
    },
    event(project, id, event, now) {
      const m = machine(project, id);
      m.lastSeen = now;
      if (typeof event.at !== "string" || event.at < m.snapshotAt) return;
      const agent = typeof event.agent_id === "string" ? event.agent_id : "";
      switch (event.type) {
        case "heartbeat":
          m.agents.set(agent, { ...m.agents.get(agent), ...(event as object), agent_id: agent, status: m.agents.get(agent)?.status ?? "active" } as AgentView);
          break;
        case "agent_status":
          if (m.agents.has(agent)) m.agents.get(agent)!.status = String(event.status);
          break;
        case "agent_gone":
          m.agents.delete(agent);
          break;
        case "item_created":
        case "item_updated":
          if (event.item && typeof event.item === "object") m.items.set(String(event.item_id), event.item as ItemView);
          break;
      }
    },
    projects(now) {
      return [...projects.keys()].map((name) => {
        const machines = [...projects.get(name)!.entries()];
        const online = machines.some(([, m]) => m.relays > 0 || now - m.lastSeen < OFFLINE_AFTER_MS) && machines.length > 0;
        const count = (values: string[]) => values.reduce<Record<string, number>>((acc, v) => ((acc[v] = (acc[v] ?? 0) + 1), acc), {});
        const lastSeen = Math.max(0, ...machines.map(([, m]) => m.lastSeen));
        return {
          name,
          online,
          machines: machines.map(([id, m]) => ({ machine_id: id, connected: m.relays > 0, last_seen: m.lastSeen ? new Date(m.lastSeen).toISOString() : null })),
          agents: count(state.agents(name).map((a) => a.status)),
          items: count(state.items(name).map((i) => i.stage)),
          last_seen: lastSeen ? new Date(lastSeen).toISOString() : null,
        };
      });
    },
    agents: (project) => merged(project, (m) => m.agents, (a, b) => (a.last_heartbeat ?? "") > (b.last_heartbeat ?? "")),
    items: (project) => merged(project, (m) => m.items, (a, b) => a.updated_at > b.updated_at),
  };
  return state;
}

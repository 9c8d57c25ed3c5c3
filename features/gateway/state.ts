/**
 * @module What the gateway knows: per project, per machine, the last snapshot and the events since. A
 * machine's state is replaced by each snapshot; events are applied only when newer than that snapshot (events
 * queued during an outage may arrive after it). Machines of one project share a hub, so agents and items are
 * merged by id, the freshest winning. Everything stored is a validated view (./frames.ts), and the counts are
 * capped: machines per project, agents and items per machine.
 */
import { type AgentView, agentViewSchema, type ItemView, MAX_AGENTS, MAX_ITEMS, type Snapshot } from "./frames.ts";

export const OFFLINE_AFTER_MS = 30_000;
/** Machines kept per project; a new one past this replaces the longest unseen machine without a relay. */
export const MAX_MACHINES = 64;

interface Machine {
  relays: number;
  lastSeen: number;
  snapshotAt: string;
  agents: Map<string, AgentView>;
  items: Map<string, ItemView>;
}

export interface GatewayState {
  /** Counts a relay of the machine; false when the project already has `MAX_MACHINES` machines with relays. */
  connect(project: string, machine: string, now: number): boolean;
  disconnect(project: string, machine: string, now: number): void;
  snapshot(project: string, machine: string, snap: Snapshot, now: number): void;
  /** Applies an event already checked (its item a valid view); false when an agent's view is invalid or a cap is reached. */
  event(project: string, machine: string, event: Record<string, unknown>, now: number): boolean;
  projects(now: number): Array<Record<string, unknown>>;
  agents(project: string): AgentView[];
  items(project: string): ItemView[];
}

export function createGatewayState(names: string[]): GatewayState {
  const projects = new Map(names.map((n) => [n, new Map<string, Machine>()]));

  function machine(project: string, id: string): Machine | null {
    const machines = projects.get(project)!;
    let m = machines.get(id);
    if (m) return m;
    if (machines.size >= MAX_MACHINES) {
      const idle = [...machines].filter(([, x]) => x.relays === 0).sort(([, a], [, b]) => a.lastSeen - b.lastSeen)[0];
      if (!idle) return null;
      machines.delete(idle[0]);
    }
    machines.set(id, (m = { relays: 0, lastSeen: 0, snapshotAt: "", agents: new Map(), items: new Map() }));
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
      if (!m) return false;
      m.relays++;
      m.lastSeen = now;
      return true;
    },
    disconnect(project, id, now) {
      const m = projects.get(project)?.get(id);
      if (!m) return;
      m.relays = Math.max(0, m.relays - 1);
      m.lastSeen = now;
    },
    snapshot(project, id, snap, now) {
      const m = projects.get(project)?.get(id);
      if (!m) return;
      m.lastSeen = now;
      m.snapshotAt = snap.at;
      m.agents = new Map(snap.agents.map((a) => [a.agent_id, a]));
      m.items = new Map(snap.items.map((i) => [i.id, i]));
    },
    event(project, id, event, now) {
      const m = projects.get(project)?.get(id);
      if (!m) return false;
      const applied = String(event.at) < m.snapshotAt || _apply(m, event);
      if (applied) m.lastSeen = now;
      return applied;
    },
    projects(now) {
      return [...projects.keys()].map((name) => {
        const machines = [...projects.get(name)!.entries()];
        const online =
          machines.some(([, m]) => m.relays > 0 || now - m.lastSeen < OFFLINE_AFTER_MS) && machines.length > 0;
        // a Map first: a relayed stage or status may be any string, "__proto__" too
        const count = (values: string[]) =>
          Object.fromEntries(values.reduce((acc, v) => acc.set(v, (acc.get(v) ?? 0) + 1), new Map<string, number>()));
        const lastSeen = Math.max(0, ...machines.map(([, m]) => m.lastSeen));
        return {
          name,
          online,
          machines: machines.map(([id, m]) => ({
            machine_id: id,
            connected: m.relays > 0,
            last_seen: m.lastSeen ? new Date(m.lastSeen).toISOString() : null,
          })),
          agents: count(state.agents(name).map((a) => a.status)),
          items: count(state.items(name).map((i) => i.stage)),
          last_seen: lastSeen ? new Date(lastSeen).toISOString() : null,
        };
      });
    },
    agents: (project) =>
      merged(
        project,
        (m) => m.agents,
        (a, b) => (a.last_heartbeat ?? "") > (b.last_heartbeat ?? ""),
      ),
    items: (project) =>
      merged(
        project,
        (m) => m.items,
        (a, b) => a.updated_at > b.updated_at,
      ),
  };
  return state;
}

// --- internal ---

/** Applies one event to a machine's views; false when the resulting view is invalid or over the caps. */
function _apply(m: Machine, event: Record<string, unknown>): boolean {
  const agent = String(event.agent_id);
  switch (event.type) {
    case "heartbeat": {
      const before = m.agents.get(agent);
      const view = agentViewSchema.safeParse({ ...before, ...event, status: before?.status ?? "active" });
      return view.success && _put(m.agents, agent, view.data, MAX_AGENTS);
    }
    case "agent_status":
      if (m.agents.has(agent)) m.agents.get(agent)!.status = String(event.status);
      return true;
    case "agent_gone":
      m.agents.delete(agent);
      return true;
    case "item_created":
    case "item_updated": {
      const item = event.item as ItemView | null;
      return item === null || _put(m.items, item.id, item, MAX_ITEMS);
    }
    default:
      return true;
  }
}

function _put<T>(map: Map<string, T>, key: string, value: T, max: number): boolean {
  if (!map.has(key) && map.size >= max) return false;
  map.set(key, value);
  return true;
}

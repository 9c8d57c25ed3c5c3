/**
 * @module The width bound of trigger chains. A chain is one originating event and everything its trigger actions
 * caused, at every depth; it may run at most `triggers.max_actions_per_event` actions. The counts live in this
 * process's memory, one small entry per recent chain: entries are kept in least-recently-used order and the
 * oldest is dropped past MAX_CHAINS, so a stream of new chains never grows the map.
 */

/** Chains remembered at once; a chain idle while this many newer ones ran is forgotten. */
export const MAX_CHAINS = 10_000;

export type HaltReason = "depth" | "budget";

export interface ChainBudget {
  /** Whether the chain has used its whole budget. */
  spent(chain: string): boolean;
  /** Counts one action against the chain. */
  spend(chain: string): void;
  /** Whether the chain's halt for this reason was reported already. */
  reported(chain: string, reason: HaltReason): boolean;
  /** Marks the halt reported; true only the first time, so a chain is reported once per reason. */
  report(chain: string, reason: HaltReason): boolean;
  /** Chains remembered now (tests). */
  size(): number;
}

export function createChainBudget(limit: number, options: { maxChains?: number } = {}): ChainBudget {
  const maxChains = options.maxChains ?? MAX_CHAINS;
  const chains = new Map<string, _Chain>();

  /** The chain's entry, moved to the newest end (a Map iterates in insertion order). */
  function use(chain: string): _Chain {
    const entry = chains.get(chain) ?? { actions: 0, reported: [] };
    chains.delete(chain);
    chains.set(chain, entry);
    if (chains.size > maxChains) chains.delete(chains.keys().next().value!);
    return entry;
  }

  return {
    spent: (chain) => use(chain).actions >= limit,
    spend(chain) {
      use(chain).actions++;
    },
    reported: (chain, reason) => use(chain).reported.includes(reason),
    report(chain, reason) {
      const entry = use(chain);
      if (entry.reported.includes(reason)) return false;
      entry.reported.push(reason);
      return true;
    },
    size: () => chains.size,
  };
}

// --- internal ---

interface _Chain {
  actions: number;
  reported: HaltReason[];
}

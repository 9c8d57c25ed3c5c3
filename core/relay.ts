/**
 * @module Events made in a CLI process reach the daemon's subscribers through this table: the CLI writes
 * them in order, the daemon drains them (on a poke from the CLI and on every tick) and publishes them as
 * if it had made the change itself. With no daemon running for a long time, the table keeps the newest events
 * only: `state.db` does not grow with use.
 */
import type { Database } from "bun:sqlite";
import type { BusEvent } from "./events.ts";

export const relayMigrations = [
  "CREATE TABLE event_relay (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)",
] as const;

/** Events kept for a daemon that is not running: older ones are old news by the time it starts. */
export const RELAY_KEPT = 10_000;

/** Stores one event for the daemon; without a daemon to drain them, only the newest RELAY_KEPT are kept. */
export function relayEvent(db: Database, event: BusEvent): void {
  const id = Number(db.query("INSERT INTO event_relay (event) VALUES (?)").run(JSON.stringify(event)).lastInsertRowid);
  if (id % 256 === 0) db.query("DELETE FROM event_relay WHERE id <= ?").run(id - RELAY_KEPT);
}

/** Takes every stored event, oldest first, and deletes what it took in the same transaction. */
export function takeRelayedEvents(db: Database): BusEvent[] {
  return db
    .transaction(() => {
      const rows = db
        .query<{ id: number; event: string }, []>("SELECT id, event FROM event_relay ORDER BY id LIMIT 10000")
        .all();
      if (!rows.length) return [];
      db.query("DELETE FROM event_relay WHERE id <= ?").run(rows.at(-1)!.id);
      return rows.map((r) => JSON.parse(r.event) as BusEvent);
    })
    .immediate();
}

/**
 * @module The pipeline's SQLite view of the hub's items: kept in step by the hub listener, rebuilt from the
 * tree by reconcile. Events are derived here from what changed in the files (and the ops of the commit),
 * so a change made by this daemon, a CLI process or another machine produces the same events.
 */
import type { Database } from "bun:sqlite";
import type { EventFields, EventType } from "../../core/events.ts";
import type { Context } from "../../core/feature.ts";
import type { OpRecord } from "../../hub/apply.ts";
import type { ChangeSet } from "../../hub/types.ts";
import { claimHeld, type Item, idFromPath, parseItemFile } from "./item.ts";
import { TERMINAL_STAGES } from "./stages.ts";
import { NO_USAGE } from "./usage.ts";

export const viewMigrations = [
  `CREATE TABLE items (id TEXT PRIMARY KEY, stage TEXT NOT NULL, priority INTEGER NOT NULL,
     created_at TEXT NOT NULL, updated_at TEXT NOT NULL, holder TEXT, expires_at INTEGER, labels TEXT NOT NULL,
     json TEXT NOT NULL);
   CREATE INDEX items_ready ON items (stage, priority, created_at);
   CREATE INDEX items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;`,
] as const;

/**
 * The machine a claim was made on, beside its expiry: with a remote each machine expires only its own lapsed
 * claims, and the tick must find those without reading the others' (which may stay lapsed for good).
 */
export const holderMachineMigration = `ALTER TABLE items ADD COLUMN holder_machine TEXT;
   UPDATE items SET holder_machine = json_extract(json, '$.claim.machine_id');
   CREATE INDEX items_expiry_by_machine ON items (holder_machine, expires_at) WHERE expires_at IS NOT NULL;`;

type Emit = <T extends EventType>(type: T, fields: EventFields<T>) => void;

/** Applies a change set to the view and publishes the events it implies. */
export function applyItemChanges(ctx: Context, set: ChangeSet): void {
  for (const change of set.changes) {
    if (!change.path.startsWith("items/")) continue;
    const id = idFromPath(change.path);
    const cause = id ? _opFor(id, set.ops)?.cause : undefined;
    const emit: Emit = (type, fields) => ctx.bus.publish(type, fields, { origin: set.origin, cause });
    const before = change.before === null ? null : _valid(change.path, change.before);
    let after: Item | null = null;
    if (change.after !== null) {
      const parsed = parseItemFile(change.path, change.after);
      if ("error" in parsed) ctx.hub.reportInvalid(change.path, parsed.error, change.after);
      else after = parsed.item;
    }
    // a removal may be the hub leaving out an entry it could not read: the hub forgets its reports when it is gone
    if (after) ctx.hub.clearInvalid(change.path);
    if (after) upsertItem(ctx.db, after, change.after!);
    else if (id) ctx.db.query("DELETE FROM items WHERE id = ?").run(id);
    itemEvents(before, after, { ops: set.ops, now: ctx.clock.now() }, emit);
  }
}

/** Stores an item with the exact hub file text (reconcile compares working files against it). */
export function upsertItem(db: Database, item: Item, text: string): void {
  db.query(
    `INSERT INTO items (id, stage, priority, created_at, updated_at, holder, holder_machine, expires_at, labels, json)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT(id) DO UPDATE SET stage = excluded.stage, priority = excluded.priority, created_at = excluded.created_at,
       updated_at = excluded.updated_at, holder = excluded.holder, holder_machine = excluded.holder_machine,
       expires_at = excluded.expires_at, labels = excluded.labels, json = excluded.json`,
  ).run(
    item.id,
    item.stage,
    item.priority,
    item.created_at,
    item.updated_at,
    item.claim?.agent_id ?? null,
    item.claim?.machine_id ?? null,
    item.claim ? Date.parse(item.claim.expires_at) : null,
    JSON.stringify(item.labels),
    text,
  );
}

/** The events that one item's change implies, given the ops that made it. */
export function itemEvents(
  before: Item | null,
  after: Item | null,
  at: { ops: OpRecord[]; now: number },
  emit: Emit,
): void {
  if (!after) return;
  if (!before) {
    emit("item_created", { item_id: after.id, item: after });
    if (after.claim) emit("claimed", _claimed(after));
    return;
  }
  const op = _opFor(after.id, at.ops);
  const fields = Object.keys(after).filter(
    (k) => k !== "updated_at" && JSON.stringify(after[k as keyof Item]) !== JSON.stringify(before[k as keyof Item]),
  );
  if (!fields.length) return;
  emit("item_updated", { item_id: after.id, item: after, fields });
  if (before.claim && before.claim.fence !== after.claim?.fence) {
    emit("claim_released", {
      item_id: after.id,
      agent_id: before.claim.agent_id,
      reason: _releaseReason(before, op, at.now),
    });
  }
  if (before.stage !== after.stage) {
    emit("transition", {
      item_id: after.id,
      from: before.stage,
      to: after.stage,
      agent_id: typeof op?.args.agent === "string" ? op.args.agent : (after.claim?.agent_id ?? null),
      reason: typeof op?.args.reason === "string" ? op.args.reason : null,
      ...(TERMINAL_STAGES.has(after.stage) ? { usage: after.usage ?? NO_USAGE } : {}),
    });
  }
  if (after.claim && before.claim?.fence !== after.claim.fence) emit("claimed", _claimed(after));
}

// --- internal ---

function _valid(path: string, text: string): Item | null {
  const parsed = parseItemFile(path, text);
  return "item" in parsed ? parsed.item : null;
}

function _opFor(id: string, ops: OpRecord[]): OpRecord | undefined {
  for (let i = ops.length - 1; i >= 0; i--) if (ops[i]!.args.id === id) return ops[i];
  return ops.find((o) => o.op === "agent.takeover");
}

function _releaseReason(
  before: Item,
  op: OpRecord | undefined,
  now: number,
): "released" | "expired" | "stale" | "lost" {
  if (op?.op === "item.expire") return "expired";
  if (op?.op === "agent.takeover") return "stale";
  if (op?.op.startsWith("item.")) return "released";
  return claimHeld(before, now) ? "lost" : "expired";
}

function _claimed(item: Item) {
  return {
    item_id: item.id,
    agent_id: item.claim!.agent_id,
    fence: item.claim!.fence,
    expires_at: item.claim!.expires_at,
  };
}

/**
 * @module Reconcile for items: the working files under `.drover/hub/items/` must equal what the hub holds
 * (the view keeps each item's exact file text). A file edited or dropped outside drover is restored from the
 * hub; what it held is kept aside under `.drover/rejected/` and reported, never silently lost.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Context, ReconcileReport } from "../../core/feature.ts";
import { listWorking } from "../../hub/working.ts";
import { idFromPath, itemPath } from "./item.ts";

export async function reconcileWorkingFiles(ctx: Context): Promise<ReconcileReport> {
  return ctx.hub.exclusive(async () => {
    const dir = ctx.paths.hub;
    const view = new Map(
      ctx.db
        .query<{ id: string; json: string }, []>("SELECT id, json FROM items")
        .all()
        .map((r) => [r.id, r.json]),
    );
    const invalid = new Set(ctx.hub.invalidFiles().map((f) => f.path));
    let restored = 0;
    let rejected = 0;
    for (const path of _workingItemFiles(dir)) {
      const id = idFromPath(path);
      const text = readFileSync(join(dir, path), "utf8");
      const expected = id ? view.get(id) : undefined;
      if (id) view.delete(id);
      if (expected === text || (expected === undefined && invalid.has(path))) continue;
      _setAside(ctx, path, text);
      rejected++;
      if (expected !== undefined) {
        _write(join(dir, path), expected);
        restored++;
      }
    }
    for (const [id, text] of view) {
      _write(join(dir, itemPath(id)), text);
      restored++;
    }
    return { changed: restored + rejected, restored, rejected };
  });
}

// --- internal ---

function _workingItemFiles(dir: string): string[] {
  const root = join(dir, "items");
  if (!existsSync(root)) return [];
  const out: string[] = [];
  for (const shard of readdirSync(root, { withFileTypes: true })) {
    if (!shard.isDirectory()) {
      out.push(`items/${shard.name}`);
      continue;
    }
    for (const f of listWorking(join(root, shard.name))) out.push(`items/${shard.name}/${f}`);
  }
  return out;
}

function _setAside(ctx: Context, path: string, text: string) {
  const target = join(ctx.paths.dir, "rejected", `${path.replaceAll("/", "_")}.${Bun.hash(text).toString(36)}`);
  mkdirSync(dirname(target), { recursive: true });
  renameSync(join(ctx.paths.hub, path), target);
  ctx.log.warn(`Hub file "${path}" was changed outside drover: kept aside as "${target}"`);
  ctx.bus.publish("hub_invalid_file", {
    path,
    reason: `changed outside drover; kept aside as "${target}" and restored from the hub`,
  });
}

function _write(file: string, text: string) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

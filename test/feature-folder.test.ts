/**
 * A feature is one folder and one line (SPEC §1): `notes` (test/fixtures/features/notes/, made only for this
 * test) declares a table, an event, a config key, an error code, ops with REST routes and a reconcile in its
 * own folder. Listed beside the others — the one line — it passes the conformance suite and works on every
 * front door, while nothing outside its folder names it.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DroverError } from "../core/errors.ts";
import { allFeatures } from "../runtime.ts";
import { createApp } from "../server/app.ts";
import { featureContract } from "./contract.ts";
import notes from "./fixtures/features/notes/index.ts";
import { tempProject, testRuntime } from "./helpers.ts";

const withNotes = [...allFeatures, notes];
const TOKEN = "t0k3n";
const auth = { authorization: `Bearer ${TOKEN}` };

featureContract(notes, withNotes);

describe("a feature from its folder alone", () => {
  let project: Awaited<ReturnType<typeof tempProject>>;
  beforeEach(async () => {
    project = await tempProject({ config: '[hub]\nremote = ""\n[notes]\nmax_length = 12\n' });
  });
  afterEach(() => project.cleanup());

  test("its REST routes, event, config key and error code work like any feature's", async () => {
    const { rt, events } = await testRuntime(project.paths, { features: withNotes });
    const app = createApp(rt, { token: TOKEN, version: "test", startedAt: Date.now() });
    expect(rt.ctx.config.notes.max_length).toBe(12);

    const added = await app.request("/api/notes", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ text: "  buy milk " }),
    });
    expect(added.status).toBe(201);
    expect(await added.json()).toEqual({ id: 1, text: "  buy milk " });
    await rt.ctx.bus.idle();
    expect(events.find((e) => e.type === "note_added")).toMatchObject({
      note_id: 1,
      text: "  buy milk ",
      origin: "local",
    });

    const tooLong = await app.request("/api/notes", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ text: "thirteen char" }),
    });
    expect(tooLong.status).toBe(413);
    expect(((await tooLong.json()) as { error: { code: string } }).error.code).toBe("note_too_long");

    const untidy = await app.request("/api/notes?tidy=false", { headers: auth });
    expect(await untidy.json()).toEqual([{ id: 1, text: "  buy milk ", tidy: 0 }]);
    expect((await rt.reconcile()).notes).toEqual({ changed: 1 });
    expect(await rt.ops.call("notes.list", { tidy: true })).toEqual([{ id: 1, text: "buy milk", tidy: 1 }]);

    // other features see it through the shared name spaces: a trigger on its event, its op as an action
    await rt.ops.call("trigger.add", {
      on: { event: "note_added" },
      op: "note.add",
      args: { text: "echo" },
      mode: "once",
    });
    await rt.ops.call("note.add", { text: "ping" });
    await rt.ctx.bus.idle();
    await rt.ctx.services.actions.settle();
    expect((await rt.ops.call("notes.list", {})).map((n) => n.text)).toEqual(["buy milk", "ping", "echo"]);
    expect(rt.ops.list().find((o) => o.name === "note.add")?.feature).toBe("notes");
    await rt.close();
  });

  test("its config key is checked like any other: a bad value names the key, an unknown one is reported", async () => {
    await Bun.write(project.paths.config, '[hub]\nremote = ""\n[notes]\nmax_length = "long"\n');
    const failed = await testRuntime(project.paths, { features: withNotes }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(DroverError);
    expect((failed as DroverError).message).toContain('"notes.max_length"');

    await Bun.write(project.paths.config, '[hub]\nremote = ""\n[notes]\nmax_lenght = 3\n');
    const { rt } = await testRuntime(project.paths, { features: withNotes });
    expect(rt.warnings.join("\n")).toContain('Unknown key "notes.max_lenght"');
    expect(rt.ctx.config.notes.max_length).toBe(280);
    await rt.close();
  });

  test("nothing outside its folder names it", () => {
    const root = resolve(import.meta.dir, "..");
    const names = ['"note_added"', '"note_too_long"', '"note.add"', '"notes.list"', "config.notes", "features/notes"];
    const mentions: string[] = [];
    for (const file of _sources(root)) {
      const text = readFileSync(join(root, file), "utf8");
      for (const name of names) if (text.includes(name)) mentions.push(`${file}: ${name}`);
    }
    expect(mentions).toEqual([]);
  });
});

// --- internal ---

/** Every source file of drover itself: the layers, the server, the CLI, the features and the runtime. */
function _sources(root: string): string[] {
  const out = ["runtime.ts", "cli.ts"];
  for (const dir of ["core", "hub", "web", "server", "cli", "features"]) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith(".ts"))
        out.push(join(entry.parentPath.slice(root.length + 1), entry.name));
    }
  }
  return out;
}

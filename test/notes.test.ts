/**
 * `item.note` (SPEC §5 "Notes"): notes appended to the item's hub file, the last 50 kept, each at most 4 KiB
 * (more is refused with a 400, nothing changed); over REST (201) and MCP; read back after a restart and from
 * the hub's commit; notes made on two machines both survive a sync; items and hub files without notes still
 * read, hub files with too many or too long notes are skipped and reported.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type ManualClock, manualClock } from "../core/clock.ts";
import type { BusEvent } from "../core/events.ts";
import { canonicalJson } from "../core/json.ts";
import { type Item, itemPath, type Note } from "../features/pipeline/item.ts";
import type { Runtime } from "../runtime.ts";
import { startServer } from "../server/serve.ts";
import { bareRepo } from "./git-server.ts";
import { api, refused, tempProject, testRuntime } from "./helpers.ts";
import { type Machine, machine } from "./sync-machines.ts";

const TOKEN = "notes-token";
let project: Awaited<ReturnType<typeof tempProject>>;
let rt: Runtime;
let events: BusEvent[];
let clock: ManualClock;

beforeEach(async () => {
  project = await tempProject();
  clock = manualClock("2026-04-01T10:00:00Z");
  ({ rt, events } = await testRuntime(project.paths, { clock }));
});
afterEach(async () => {
  await rt.close();
  project.cleanup();
});

const op = <T = Item>(name: string, input: unknown) => rt.ops.run(name, input) as Promise<T>;
const note = (input: { id: string; text: string; agent?: string }) =>
  op<Note & { item_id: string }>("item.note", input);
/** The item's file as the hub's branch holds it (the commit, not the working copy). */
const committed = (id: string) =>
  JSON.parse(
    execFileSync("git", ["show", `drover/hub:${itemPath(id)}`], { cwd: project.paths.hub, encoding: "utf8" }),
  ) as Item;

describe("item.note", () => {
  test("appends {at, agent_id, text} to the item's notes in the hub; agent_id is null without an agent", async () => {
    const it = await op("item.create", { title: "x" });
    expect(it.notes).toBeUndefined(); // an item without notes has no such field: files as before
    expect(await note({ id: it.id, text: "tests fail on CI: DATABASE_URL unset", agent: "agent-1" })).toEqual({
      item_id: it.id,
      at: "2026-04-01T10:00:00.000Z",
      agent_id: "agent-1",
      text: "tests fail on CI: DATABASE_URL unset",
    });
    clock.advance(1000);
    await note({ id: it.id, text: "second\nwith a newline" });
    const want = [
      { at: "2026-04-01T10:00:00.000Z", agent_id: "agent-1", text: "tests fail on CI: DATABASE_URL unset" },
      { at: "2026-04-01T10:00:01.000Z", agent_id: null, text: "second\nwith a newline" },
    ];
    const got = await op("item.get", { id: it.id });
    expect(got.notes).toEqual(want);
    expect(got.updated_at).toBe("2026-04-01T10:00:01.000Z");
    expect(committed(it.id).notes).toEqual(want);
    await rt.ctx.bus.idle();
    const updates = events.filter((e) => e.type === "item_updated") as BusEvent<"item_updated">[];
    expect(updates.map((e) => [e.item_id, e.fields])).toEqual([
      [it.id, ["notes"]],
      [it.id, ["notes"]],
    ]);
    expect((await refused(note({ id: "zzzzz", text: "x" }))).code).toBe("not_found");
  });

  test("keeps the last 50", async () => {
    const it = await op("item.create", { title: "x" });
    for (let i = 1; i <= 53; i++) await note({ id: it.id, text: `note ${i}` });
    const notes = (await op("item.get", { id: it.id })).notes!;
    expect(notes).toHaveLength(50);
    expect(notes[0]!.text).toBe("note 4");
    expect(notes.at(-1)!.text).toBe("note 53");
    expect(committed(it.id).notes).toEqual(notes);
  });

  test("50 notes of text JSON escapes keep to the notes' budget: the oldest go, the file stays readable by other machines", async () => {
    const it = await op("item.create", { title: "x" });
    // 4096 control characters: 4 KiB of text, 24 KiB of JSON; 50 of them would be 1.2 MB
    const text = (i: number) => `${i}`.padEnd(4096, "\u0001");
    for (let i = 1; i <= 50; i++) await note({ id: it.id, text: text(i) });
    const notes = committed(it.id).notes!;
    expect(notes.length).toBeLessThan(50);
    expect(notes.at(-1)!.text).toBe(text(50));
    expect(Buffer.byteLength(JSON.stringify(notes))).toBeLessThanOrEqual(256 * 1024);
    const file = execFileSync("git", ["cat-file", "-s", `drover/hub:${itemPath(it.id)}`], {
      cwd: project.paths.hub,
      encoding: "utf8",
    });
    expect(Number(file)).toBeLessThan(rt.ctx.config.hub.max_file_bytes);
  });

  test("4 KiB of UTF-8 is the limit: 4096 bytes are kept, 4098 bytes in 2049 characters are a 400 that changes nothing", async () => {
    const it = await op("item.create", { title: "x" });
    await note({ id: it.id, text: "é".repeat(2048) }); // 4096 bytes
    const head = await rt.ctx.hub.repo.head();
    const before = await op("item.get", { id: it.id });
    const server = startServer(rt, { host: "127.0.0.1", port: 0, token: TOKEN, version: "test" });
    try {
      for (const text of ["é".repeat(2049), "x".repeat(4097), ""]) {
        const res = await api(server.url, TOKEN, `/api/items/${it.id}/notes`, { text });
        expect({ len: text.length, status: res.status, code: res.body.error?.code }).toEqual({
          len: text.length,
          status: 400,
          code: "invalid_input",
        });
      }
    } finally {
      await server.stop();
    }
    expect((await refused(note({ id: it.id, text: "x".repeat(5000) }))).code).toBe("invalid_input");
    expect(await rt.ctx.hub.repo.head()).toBe(head);
    expect(await op("item.get", { id: it.id })).toEqual(before);
    expect(before.notes).toHaveLength(1);
  });

  test("POST /api/items/:id/notes answers 201; MCP's item.note adds one too; an idempotency key adds it once", async () => {
    const it = await op("item.create", { title: "x" });
    const server = startServer(rt, { host: "127.0.0.1", port: 0, token: TOKEN, version: "test" });
    try {
      const res = await api(server.url, TOKEN, `/api/items/${it.id}/notes`, { text: "over http", agent: "agent-h" });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ item_id: it.id, agent_id: "agent-h", text: "over http" });
      const keyed = { text: "once", idempotency_key: "note-once-1" };
      const once = await api(server.url, TOKEN, `/api/items/${it.id}/notes`, keyed);
      clock.advance(1000);
      expect(await api(server.url, TOKEN, `/api/items/${it.id}/notes`, keyed)).toEqual(once);

      const client = new Client({ name: "t", version: "1" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(server.url + "/mcp"), {
          requestInit: { headers: { authorization: `Bearer ${TOKEN}` } },
        }),
      );
      const result = (await client.callTool({
        name: "item.note",
        arguments: { id: it.id, text: "over mcp", agent: "agent-m" },
      })) as { isError?: boolean; content: Array<{ text: string }> };
      expect(result.isError).toBeFalsy();
      expect(JSON.parse(result.content[0]!.text)).toMatchObject({ item_id: it.id, agent_id: "agent-m" });
      const tooLong = (await client.callTool({
        name: "item.note",
        arguments: { id: it.id, text: "x".repeat(4097) },
      })) as {
        isError?: boolean;
        content: Array<{ text: string }>;
      };
      expect(tooLong.isError).toBe(true);
      expect(JSON.parse(tooLong.content[0]!.text).error.code).toBe("invalid_input");
      await client.close();
      const got = (await api(server.url, TOKEN, `/api/items/${it.id}`)).body as Item;
      expect(got.notes!.map((n) => n.text)).toEqual(["over http", "once", "over mcp"]);
    } finally {
      await server.stop();
    }
  });

  test("notes are read back after a restart", async () => {
    const it = await op("item.create", { title: "x" });
    await note({ id: it.id, text: "before the restart", agent: "agent-1" });
    await rt.close();
    ({ rt, events } = await testRuntime(project.paths, { clock }));
    expect((await op("item.get", { id: it.id })).notes).toEqual([
      { at: "2026-04-01T10:00:00.000Z", agent_id: "agent-1", text: "before the restart" },
    ]);
  });

  test("an item file without notes (written before them) reads and takes a note", async () => {
    const old = {
      id: "qqqqq",
      title: "from an older drover",
      body: "",
      labels: [],
      priority: 2,
      stage: "backlog",
      depends_on: [],
      claim: null,
      fence: 0,
      created_at: "2026-04-01T09:00:00.000Z",
      created_by: "x",
      updated_at: "2026-04-01T09:00:00.000Z",
    };
    await rt.ctx.hub.repo.commit(new Map([[itemPath(old.id), canonicalJson(old)]]), {
      parent: await rt.ctx.hub.repo.head(),
      message: "by hand\n",
      time: clock.now(),
    });
    await rt.reconcile();
    expect(await op("item.get", { id: old.id })).toEqual(old as Item);
    await note({ id: old.id, text: "first note" });
    expect((await op("item.get", { id: old.id })).notes).toEqual([
      { at: "2026-04-01T10:00:00.000Z", agent_id: null, text: "first note" },
    ]);
  });

  test("a hub file with more than 50 notes, or a note over 4 KiB, is skipped and reported", async () => {
    const base = {
      title: "hostile",
      body: "",
      labels: [],
      priority: 2,
      stage: "backlog",
      depends_on: [],
      claim: null,
      fence: 0,
      created_at: "2026-04-01T09:00:00.000Z",
      created_by: "x",
      updated_at: "2026-04-01T09:00:00.000Z",
    };
    const n = (text: string) => ({ at: "2026-04-01T09:00:00.000Z", agent_id: null, text });
    const files = new Map([
      [itemPath("mmmmm"), canonicalJson({ ...base, id: "mmmmm", notes: Array.from({ length: 51 }, () => n("x")) })],
      [itemPath("lllll"), canonicalJson({ ...base, id: "lllll", notes: [n("é".repeat(2049))] })],
      [itemPath("aaaaa"), canonicalJson({ ...base, id: "aaaaa", notes: [{ ...n("x"), agent_id: "../x" }] })],
    ]);
    await rt.ctx.hub.repo.commit(files, { parent: await rt.ctx.hub.repo.head(), message: "bad\n", time: clock.now() });
    await rt.reconcile();
    for (const id of ["mmmmm", "lllll", "aaaaa"])
      expect((await refused(op("item.get", { id }))).code).toBe("not_found");
    const status = (await rt.ops.run("sync.status", {})) as { invalid_files: Array<{ path: string; reason: string }> };
    expect(status.invalid_files.map((f) => f.path).sort()).toEqual([...files.keys()].sort());
  });
});

describe("notes across machines", () => {
  const remote = bareRepo();
  const machines: Machine[] = [];
  afterAll(async () => {
    for (const m of machines) await m.cleanup();
    rmSync(remote.root, { recursive: true, force: true });
  });

  test("notes made on two machines before a sync both survive it, on both", async () => {
    const a = await machine(remote.path);
    machines.push(a);
    const b = await machine(remote.path);
    machines.push(b);
    const it = await a.op("item.create", { title: "shared" });
    await a.op("sync.now");
    await b.op("sync.now");
    await a.op("item.note", { id: it.id, text: "from a", agent: "agent-a" });
    await b.op("item.note", { id: it.id, text: "from b", agent: "agent-b" });
    await a.op("sync.now");
    await b.op("sync.now");
    await a.op("sync.now");
    for (const m of [a, b]) {
      const notes = (await m.op("item.get", { id: it.id })).notes as Note[];
      expect(notes.map((x) => [x.agent_id, x.text])).toEqual([
        ["agent-a", "from a"],
        ["agent-b", "from b"],
      ]);
    }
  });
});

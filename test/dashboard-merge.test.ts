/**
 * The dashboard's merges (SPEC §14) in real headless Chromium (test/browser.ts), against a daemon process that lands
 * items on `main` of a real git repository: the Merges panel (queue and latest results) and the board's marks,
 * live without reload; a conflict names its files, as text even when a file's name is markup; the gateway hides the
 * panel (merges are each machine's own). Screenshots go to test-artifacts/dashboard/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { createLogger } from "../core/logger.ts";
import { startGateway } from "../features/gateway/server.ts";
import { launchChromium } from "./browser.ts";
import { api, BUN, CLI, type DaemonProc, firstCommit, git, ROOT, startDaemonProcess, tempProject } from "./helpers.ts";

const SCREENSHOTS = join(ROOT, "test-artifacts", "dashboard");
const HOSTILE = "<img src=x onerror=window.pwned=1>.txt";

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
/** The daemon's clock runs this many milliseconds ahead (`DROVER_CLOCK_FILE`): the test moves it, not waits. */
let clockFile: string;
let offset = 0;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  project = await tempProject();
  firstCommit(project.dir, { "app.txt": "one\ntwo\nthree\n" });
  await Bun.write(project.paths.config, `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n`);
  clockFile = join(project.dir, "clock");
  writeFileSync(clockFile, "0");
  daemon = await startDaemonProcess([BUN, CLI], project.paths, { DROVER_CLOCK_FILE: clockFile });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(`${daemon.url}/#token=${daemon.token}`);
  await page.waitForSelector("#conn-text:has-text('live')");
  await page.waitForSelector("#merges-panel:not(.hidden) #merges:has-text('No merges yet')");
}, 30_000);
afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  project?.cleanup();
});

describe("dashboard: merges", () => {
  test("an item moved to merge lands within 2 s without reload: its result with the short sha, the card marked", async () => {
    const id = await _itemWithWork("Add the greeting", [["hello.txt", "hello\n"]]);
    const started = Date.now();
    await _toMerge(id);
    const row = await page.waitForSelector(`#merges tr[data-result-item="${id}"][data-result="merged"]`, {
      timeout: 2000,
    });
    const item = (await api(daemon.url, daemon.token, `/api/items/${id}`)).body;
    expect(item).toMatchObject({ stage: "done", merged: { base: "main", strategy: "merge" } });
    expect(item.merged.sha).toBe(git(project.dir, "rev-parse", "main"));
    const short = item.merged.sha.slice(0, 7);
    expect(await row.textContent()).toContain(`merged ${short}`);
    expect(await row.textContent()).toContain("Add the greeting");
    await page.waitForSelector(
      `.col[data-stage="done"] [data-item="${id}"] .merge-mark.merged:has-text("merged ${short} → main")`,
      { timeout: 2000 },
    );
    console.log(`merge result and mark visible after ${Date.now() - started} ms`);
    expect(await page.$$(`#merges tr[data-merge-item]`)).toHaveLength(0); // the queue is empty again
    await page.screenshot({ path: join(SCREENSHOTS, "10-merged.png"), fullPage: true });
  }, 30_000);

  test("a conflict: the result names the file, the item is back in coding, and its card says the merge failed", async () => {
    const id = await _itemWithWork("Reword line two", [["app.txt", "one\ntwo from the item\nthree\n"]]);
    writeFileSync(join(project.dir, "app.txt"), "one\ntwo from main\nthree\n");
    git(project.dir, "commit", "-q", "-am", "main rewords line two");
    const before = git(project.dir, "rev-parse", "main");
    await _toMerge(id);
    const row = await page.waitForSelector(`#merges tr[data-result-item="${id}"][data-result="conflict"]`, {
      timeout: 2000,
    });
    expect(await row.textContent()).toContain("conflict");
    expect(await row.textContent()).toContain("app.txt");
    const mark = await page.waitForSelector(`.col[data-stage="coding"] [data-item="${id}"] .merge-mark.failed`, {
      timeout: 2000,
    });
    expect(await mark.textContent()).toBe("last merge: conflict in app.txt");
    expect((await api(daemon.url, daemon.token, `/api/items/${id}`)).body.stage).toBe("coding");
    expect(git(project.dir, "rev-parse", "main")).toBe(before); // nothing half-merged
    // the previous result stays listed below, newest first
    const results = await page.$$eval("#merges tr[data-result-item]", (trs) =>
      trs.map((tr) => tr.getAttribute("data-result")),
    );
    expect(results.slice(0, 2)).toEqual(["conflict", "merged"]);
    await page.screenshot({ path: join(SCREENSHOTS, "11-merge-conflict.png"), fullPage: true });
  }, 30_000);

  test("a conflicting file whose name is markup is shown as text: no element made from it", async () => {
    const id = await _itemWithWork("Add the banner", [[HOSTILE, "from the item\n"]]);
    writeFileSync(join(project.dir, HOSTILE), "from main\n");
    git(project.dir, "add", "--", HOSTILE);
    git(project.dir, "commit", "-q", "-m", "main adds the banner");
    await _toMerge(id);
    const row = await page.waitForSelector(`#merges tr[data-result-item="${id}"][data-result="conflict"]`, {
      timeout: 2000,
    });
    const results = (await api(daemon.url, daemon.token, "/api/merge")).body.results;
    expect(results[0]).toMatchObject({ item_id: id, result: "conflict", detail: { files: [HOSTILE] } });
    expect(await row.textContent()).toContain(HOSTILE);
    const mark = await page.waitForSelector(`[data-item="${id}"] .merge-mark.failed`, { timeout: 2000 });
    expect(await mark.textContent()).toBe(`last merge: conflict in ${HOSTILE}`);
    expect(await page.$$("img")).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await page.screenshot({ path: join(SCREENSHOTS, "12-merge-hostile-file.png"), fullPage: true });
  }, 30_000);

  test("a merge waiting for a dirty checkout is in the queue with its reason, then lands once the checkout is clean", async () => {
    const id = await _itemWithWork("Add the footer", [["footer.txt", "footer\n"]]);
    writeFileSync(join(project.dir, "app.txt"), "local edits nobody committed\n");
    await _toMerge(id);
    const row = await page.waitForSelector(`#merges tr[data-merge-item="${id}"][data-state="waiting"]`, {
      timeout: 2000,
    });
    const { queue } = (await api(daemon.url, daemon.token, "/api/merge")).body;
    expect(queue).toEqual([expect.objectContaining({ item_id: id, state: "waiting" })]);
    expect(await row.textContent()).toContain(queue[0].reason);
    expect(await row.textContent()).toContain("Add the footer");
    const mark = await page.waitForSelector(`.col[data-stage="merge"] [data-item="${id}"] .merge-mark.pending`);
    expect(await mark.textContent()).toBe("merge waiting"); // the reason is in the queue, and the mark's title
    expect(await mark.getAttribute("title")).toBe(queue[0].reason);
    await page.screenshot({ path: join(SCREENSHOTS, "13-merge-waiting.png"), fullPage: true });
    git(project.dir, "checkout", "--", "app.txt");
    // tried again every 5 s of the daemon's clock: moved past them, the next tick (≤ 1 s) lands it
    writeFileSync(clockFile, String((offset += 6_000)));
    await page.waitForSelector(`#merges tr[data-result-item="${id}"][data-result="merged"]`, { timeout: 3000 });
    await page.waitForSelector(`.col[data-stage="done"] [data-item="${id}"] .merge-mark.merged`, { timeout: 2000 });
    expect(await page.$$(`#merges tr[data-merge-item]`)).toHaveLength(0);
  }, 30_000);

  test("a reload (reconnect) shows the same results, and the card of a failed merge keeps its mark", async () => {
    const before = await page.$$eval("#merges tr[data-result-item]", (trs) => trs.map((tr) => tr.textContent));
    await page.reload();
    await page.waitForSelector("#conn-text:has-text('live')");
    await page.waitForSelector("#merges tr[data-result-item]");
    expect(await page.$$eval("#merges tr[data-result-item]", (trs) => trs.map((tr) => tr.textContent))).toEqual(before);
    expect(await page.$$(".merge-mark.failed")).toHaveLength(2);
    expect(await page.$$(".merge-mark.merged")).toHaveLength(2);
  }, 30_000);
});

describe("dashboard: merges on the gateway", () => {
  test("the Merges panel is hidden there, like runs: each machine's own", async () => {
    const gw = startGateway(
      { token: "reader-token-0123456789", project: [{ name: "webapp", token: "webapp-token-0123456789" }] },
      { host: "127.0.0.1", port: 0, log: createLogger("gw", { level: "error" }) },
    );
    const gwPage = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const requests: string[] = [];
    gwPage.on("request", (r) => requests.push(new URL(r.url()).pathname));
    try {
      await gwPage.goto(`${gw.url}/#token=reader-token-0123456789`);
      await gwPage.waitForSelector("#projects-panel:not(.hidden)");
      await gwPage.waitForSelector("#conn-text:has-text('live')");
      expect(await gwPage.isHidden("#merges-panel")).toBe(true);
      expect(await gwPage.isHidden("#runs-panel")).toBe(true);
      expect(requests.filter((p) => p.endsWith("/merge"))).toEqual([]);
    } finally {
      await gwPage.close();
      await gw.stop();
    }
  }, 30_000);
});

// --- internal ---

/** An item started by agent a1 over the HTTP API, with `commits` made on its branch in its worktree. */
async function _itemWithWork(title: string, commits: Array<[file: string, text: string]>): Promise<string> {
  const created = await api(daemon.url, daemon.token, "/api/items", { title });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const started = await api(daemon.url, daemon.token, "/api/ops/item.start", { id, agent: "a1" });
  expect(started.status).toBe(200);
  for (const [file, text] of commits) {
    writeFileSync(join(started.body.path, file), text);
    git(started.body.path, "add", "--", file);
    git(started.body.path, "commit", "-q", "-m", `${title}: ${file}`);
  }
  return id;
}

/** Moves the item to merge as its holder: the daemon (merge.mode = auto) lands it. */
async function _toMerge(id: string): Promise<void> {
  const { fence } = (await api(daemon.url, daemon.token, `/api/items/${id}`)).body;
  const moved = await api(daemon.url, daemon.token, `/api/items/${id}/move`, { to: "merge", agent: "a1", fence });
  expect(moved.status).toBe(200);
}

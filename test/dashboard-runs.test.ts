/**
 * The dashboard's runs (SPEC §13: "runs beside agents, with the live log of the one you open") in real headless
 * Chromium (test/browser.ts), against a daemon process whose runner starts the scripted agent
 * (test/fixtures/runner-agent.ts). Screenshots go to test-artifacts/dashboard/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./browser.ts";
import { runnerProject, runsOf } from "./fixtures/runner-project.ts";
import { api, BUN, CLI, createItem, type DaemonProc, ROOT, startDaemonProcess } from "./helpers.ts";

const SCREENSHOTS = join(ROOT, "test-artifacts", "dashboard");

let project: Awaited<ReturnType<typeof runnerProject>>;
let daemon: DaemonProc;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  project = await runnerProject({ max: 2 });
  daemon = await startDaemonProcess([BUN, CLI], project.paths);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(`${daemon.url}/#token=${daemon.token}`);
  await page.waitForSelector("#conn-text:has-text('live')");
  await page.waitForSelector("#runs-panel:not(.hidden) #runs:has-text('No runs')");
}, 30_000);
afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  project?.cleanup();
});

describe("dashboard: runs", () => {
  test("a run appears within 2 s without reload; its log grows live while open; Stop ends it as stopped", async () => {
    const logPolls: string[] = [];
    page.on("request", (r) => {
      if (/\/api\/runs\/run-[a-z2-7]{8}$/.test(new URL(r.url()).pathname)) logPolls.push(r.url());
    });
    const id = await createItem(daemon, "chatty-once demo");
    const started = Date.now();
    const row = await page.waitForSelector(`#runs tr[data-state="running"]:has-text("${id}")`, { timeout: 2000 });
    console.log(`run visible after ${Date.now() - started} ms`);
    const run = (await row.getAttribute("data-run")) as string;
    expect(await row.textContent()).toContain("scripted");
    expect(await row.textContent()).toContain("chatty-once demo");

    await row.click();
    await page.waitForSelector('#run-view:not(.hidden)[data-state="running"]');
    expect(await page.textContent("#run-title")).toBe(run);
    const lines = await _waitLines(0);
    await _waitLines(lines); // it grows while open: polled about once a second
    expect(await page.isVisible("#run-stop")).toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, "7-run-log.png"), fullPage: true });

    // closed, it is no longer polled; opened again, it is
    await page.click("#run-close");
    expect(await page.isHidden("#run-view")).toBe(true);
    await Bun.sleep(300);
    const polledBefore = logPolls.length;
    await Bun.sleep(1500);
    expect(logPolls.length).toBe(polledBefore);
    await page.click(`#runs tr[data-run="${run}"]`);
    await _waitLines(lines);

    await page.click("#run-stop");
    await page.waitForSelector(`#runs tr[data-run="${run}"][data-state="ended"] .run-state:has-text("stopped")`, {
      timeout: 5000,
    });
    await page.waitForSelector('#run-view[data-state="ended"]');
    expect(await page.isHidden("#run-stop")).toBe(true);
    expect(await page.textContent("#run-meta")).toContain("stopped");
    const ended = (await api(daemon.url, daemon.token, `/api/runs/${run}`)).body;
    expect(ended).toMatchObject({ state: "ended", reason: "stopped" });
    expect(await page.textContent("#run-log")).toBe(ended.tail);
    await Bun.sleep(300);
    const polledAtEnd = logPolls.length;
    await Bun.sleep(1500);
    expect(logPolls.length).toBe(polledAtEnd); // an ended run is not polled

    // released, the item is taken again, and this time the agent succeeds: newest first
    await page.waitForSelector(`#runs tr[data-state="ended"]:has-text("${id}") .run-state:has-text("success")`, {
      timeout: 10_000,
    });
    const rows = await page.$$eval(`#runs tr[data-run]`, (trs) =>
      trs.map((tr) => [tr.getAttribute("data-run"), tr.querySelector(".run-state")?.textContent]),
    );
    expect(rows[1]).toEqual([run, expect.stringContaining("stopped")]);
    expect(rows[0]?.[1]).toContain("success (exit 0)");
    await page.screenshot({ path: join(SCREENSHOTS, "8-run-stopped.png"), fullPage: true });
  }, 30_000);

  test("a log holding markup is shown as text: what the API's tail says, and no element made from it", async () => {
    // the agent names an unknown behaviour (the title's first word) on stderr: the markup lands in the log
    const id = await createItem(daemon, "<img/src=x/onerror=window.pwned=1> hostile");
    const runs = await runsOf(daemon, id, (r) => r.some((x: any) => x.state === "ended"));
    const run = runs.find((r) => r.state === "ended").run as string;
    await page.click(`#runs tr[data-run="${run}"]`);
    await page.waitForSelector('#run-view[data-state="ended"]');
    const { tail } = (await api(daemon.url, daemon.token, `/api/runs/${run}`)).body;
    expect(tail).toContain('unknown behaviour "<img/src=x/onerror=window.pwned=1>"');
    expect(await page.textContent("#run-log")).toBe(tail);
    expect(await page.$$("#run-log *")).toHaveLength(0);
    expect(await page.$$("img")).toHaveLength(0); // nor in the runs list or the board, where the title shows
    expect(await page.textContent(`#runs tr[data-run="${run}"]`)).toContain("<img/src=x/onerror=window.pwned=1>");
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await page.screenshot({ path: join(SCREENSHOTS, "9-run-hostile-log.png"), fullPage: true });
  }, 30_000);
});

// --- internal ---

/** Waits until the open log holds more "working" lines than `than`, and answers how many. */
async function _waitLines(than: number): Promise<number> {
  const count = () =>
    page.$eval("#run-log", (el) => (el.textContent ?? "").split("\n").filter((l) => l.startsWith("working")).length);
  await page.waitForFunction(
    (n) =>
      (document.getElementById("run-log")?.textContent ?? "").split("\n").filter((l) => l.startsWith("working"))
        .length > n,
    than,
    { timeout: 5000 },
  );
  return count();
}

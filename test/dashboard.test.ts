/**
 * The dashboard in real headless Chromium (Debian's package, else the npm one: test/browser.ts) against the compiled
 * daemon. Screenshots go to test-artifacts/dashboard/ so a person can look at them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { createLogger } from "../core/logger.ts";
import { startGateway } from "../features/gateway/server.ts";
import { launchChromium } from "./browser.ts";
import { api, BINARY, cli, type DaemonProc, freePort, ROOT, startDaemonProcess, tempProject } from "./helpers.ts";

export const SCREENSHOTS = join(ROOT, "test-artifacts", "dashboard");

let project: Awaited<ReturnType<typeof tempProject>>;
let daemon: DaemonProc;
let browser: Browser;
let page: Page;
let port: number;

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  project = await tempProject({ config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n' });
  port = await freePort();
  daemon = await startDaemonProcess([BINARY], project.paths, {}, port);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
}, 30_000);
afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  project?.cleanup();
});

describe("dashboard", () => {
  test("without the token the page asks for it and shows no data", async () => {
    await api(daemon.url, daemon.token, "/api/items", { title: "secret plans" });
    await page.goto(daemon.url + "/");
    await page.waitForSelector("#login:not(.hidden)");
    expect(await page.isHidden("#app")).toBe(true);
    expect(await page.content()).not.toContain("secret plans");
    await page.screenshot({ path: join(SCREENSHOTS, "1-no-token.png") });
    await page.fill("#token-input", "wrong-token");
    await page.click("#login button");
    await page.waitForSelector("#login-error:has-text('refused')");
  });

  test("with the token: agents with their status and the pipeline as a board", async () => {
    await api(daemon.url, daemon.token, "/api/agents/ada/heartbeat", {});
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "Add a login page", labels: ["ui"] }))
      .body;
    await api(daemon.url, daemon.token, `/api/items/${item.id}/claim`, { agent: "ada" });
    await page.goto(`${daemon.url}/#token=${daemon.token}`);
    await page.waitForSelector('[data-agent="ada"] .dot.active');
    await page.waitForSelector(`.col[data-stage="backlog"] [data-item="${item.id}"]:has-text("ada")`);
    expect(page.url()).not.toContain(daemon.token); // the token leaves the address bar
    expect(await page.textContent("#conn-text")).toBe("live");
    await page.screenshot({ path: join(SCREENSHOTS, "2-board.png"), fullPage: true });
  });

  test("a heartbeat and an item move done through the CLI appear without reload within 1 s", async () => {
    const item = (await api(daemon.url, daemon.token, "/api/items", { title: "Fix the flaky test" })).body;
    await page.waitForSelector(`[data-item="${item.id}"]`);
    expect((await cli(["heartbeat", "--agent", "grace", "--state", "working"], project.dir)).code).toBe(0);
    let started = Date.now();
    await page.waitForSelector('[data-agent="grace"]', { timeout: 1000 });
    console.log(`cli heartbeat visible after ${Date.now() - started} ms`);
    expect((await cli(["item", "move", "--id", item.id, "--to", "coding", "--force"], project.dir)).code).toBe(0);
    started = Date.now();
    await page.waitForSelector(`.col[data-stage="coding"] [data-item="${item.id}"]`, { timeout: 1000 });
    console.log(`cli move visible after ${Date.now() - started} ms`);
    await page.screenshot({ path: join(SCREENSHOTS, "3-live.png"), fullPage: true });
  });

  test("after the daemon restarts the page reconnects and is correct again", async () => {
    await daemon.stop();
    await page.waitForSelector("#conn-text:has-text('reconnecting')");
    const created = await cli(["item", "create", "--title", "Made while the daemon was down", "--json"], project.dir);
    const id = JSON.parse(created.stdout).id;
    daemon = await startDaemonProcess([BINARY], project.paths, {}, port);
    await page.waitForSelector("#conn-text:has-text('live')", { timeout: 15_000 });
    await page.waitForSelector(`[data-item="${id}"]`, { timeout: 2000 });
    await page.screenshot({ path: join(SCREENSHOTS, "4-after-restart.png"), fullPage: true });
  }, 30_000);
});

describe("dashboard: what a person must decide", () => {
  test("a committed value waiting for drover trust is shown, naming the command; once approved it goes away", async () => {
    const waiting = await tempProject({
      config: '[hub]\nremote = ""\n[pipeline]\nauto_assign = false\nbase_branch = "release"\n',
    });
    const d = await startDaemonProcess([BINARY], waiting.paths);
    const trustPage = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    try {
      await trustPage.goto(`${d.url}/#token=${d.token}`);
      await trustPage.waitForSelector("#notice:not(.hidden):has-text('pipeline.base_branch')");
      expect(await trustPage.textContent("#notice")).toContain("drover trust");
      await trustPage.screenshot({ path: join(SCREENSHOTS, "6-trust-notice.png"), fullPage: true });
      expect((await cli(["trust", "--yes"], waiting.dir)).code).toBe(0);
      for (let i = 0; i < 50 && (await api(d.url, d.token, "/api/config")).body.untrusted.length; i++)
        await Bun.sleep(100);
      await trustPage.reload();
      await trustPage.waitForSelector("#conn-text:has-text('live')");
      await trustPage.waitForSelector("#notice.hidden", { state: "attached", timeout: 5000 });
    } finally {
      await trustPage.close();
      await d.stop();
      waiting.cleanup();
    }
  }, 30_000);
});

describe("dashboard on the gateway", () => {
  test("a project picker, an overview of every project, and the chosen project's agents and board", async () => {
    const gw = startGateway(
      {
        token: "reader-token-0123456789",
        project: [
          { name: "webapp", token: "webapp-token-0123456789" },
          { name: "infra", token: "infra-token-0123456789" },
        ],
      },
      { host: "127.0.0.1", port: 0, log: createLogger("gw", { level: "error" }) },
    );
    const relayed = await tempProject({
      config: `[hub]\nremote = ""\n[pipeline]\nauto_assign = false\n[gateway]\nurl = "${gw.url}"\nproject = "infra"\ntoken = "infra-token-0123456789"\n`,
      trusted: true,
    });
    const d = await startDaemonProcess([BINARY], relayed.paths);
    try {
      await api(d.url, d.token, "/api/agents/deployer/heartbeat", {});
      await api(d.url, d.token, "/api/items", { title: "Rotate the certificates" });
      const gwPage = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      await gwPage.goto(`${gw.url}/#token=reader-token-0123456789`);
      await gwPage.waitForSelector("#picker:not(.hidden) option", { state: "attached" });
      expect(await gwPage.$$eval("#picker option", (o) => o.map((x) => x.textContent))).toEqual(["webapp", "infra"]);
      await gwPage.waitForSelector("#projects tr:has-text('infra')");
      await gwPage.selectOption("#picker", "infra");
      await gwPage.waitForSelector('[data-agent="deployer"]');
      await gwPage.waitForSelector(".card:has-text('Rotate the certificates')");
      await gwPage.screenshot({ path: join(SCREENSHOTS, "5-gateway.png"), fullPage: true });
      await gwPage.close();
    } finally {
      await d.stop();
      await gw.stop();
      relayed.cleanup();
    }
  }, 30_000);
});

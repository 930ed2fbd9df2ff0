/**
 * The playground against deployments as operators run them: an instance that requires an API key
 * (`ACP_API_KEYS`), and two instances sharing Redis behind nginx (round robin, no affinity),
 * where one run's requests are visibly served by both. With `UPDATE_SCREENSHOTS=1` it also
 * writes docs/images/playground.png: an approval awaiting its answer, its events from two
 * instances.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, redisBackend } from "../ha/backends.ts";
import { ensurePlaygroundBuilt, launchBrowser, offOrigin, openPage } from "../support/browser.ts";
import { type Balancer, type Instance, startInstance, startNginx, stopInstances } from "../support/cluster.ts";

const KEY = "playground-test-key";
const images = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs/images");

let browser: Browser;
let secured: Instance;
let redis: Backend;
let pair: Instance[] = [];
let nginx: Balancer | undefined;

async function instanceId(url: string): Promise<string> {
  const id = (await fetch(`${url}/ping`)).headers.get("acp-instance");
  if (!id) throw new Error(`${url}/ping has no acp-instance header`);
  return id;
}

async function startRun(page: Page, agent: string, mode: string, text: string): Promise<void> {
  await page.getByRole("combobox", { name: "Agent" }).selectOption(agent);
  await page.getByRole("combobox", { name: "Mode" }).selectOption(mode);
  await page.getByRole("textbox", { name: "Message" }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

async function runEnds(page: Page, status: string): Promise<void> {
  await page
    .getByRole("status", { name: "Run status" })
    .filter({ hasText: `: ${status}` })
    .waitFor();
}

beforeAll(async () => {
  await ensurePlaygroundBuilt();
  redis = redisBackend();
  // A short lease: when an instance dies, the other adopts its durable runs within about two seconds.
  const env = { ...redis.env, ACP_DRAIN_MS: "500", ACP_LEASE_MS: "1500" };
  [browser, secured, ...pair] = await Promise.all([
    launchBrowser(),
    startInstance({ ACP_API_KEYS: `${KEY},another-key` }),
    startInstance(env),
    startInstance(env),
  ]);
  nginx = await startNginx(pair.map((instance) => instance.url));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await nginx?.stop();
  await stopInstances([secured, ...pair].filter(Boolean));
  await redis?.cleanup();
});

describe("the playground with an API key", { timeout: 90_000 }, () => {
  it("shows the error without a key, works with one, and keeps it for the tab's session", async () => {
    const { page, requests } = await openPage(browser);
    try {
      await page.goto(`${secured.url}/`);
      const alert = page.getByRole("alert");
      await alert.filter({ hasText: "Missing or invalid API key" }).waitFor();
      await alert.filter({ hasText: "API key field" }).waitFor();

      const key = page.getByRole("textbox", { name: "API key" });
      const refused = page.waitForResponse(
        (response) =>
          response.url().includes("/agents") && response.request().headers().authorization === "Bearer wrong-key",
      );
      await key.fill("wrong-key");
      await key.blur();
      expect((await refused).status()).toBe(401);
      await alert.filter({ hasText: "(HTTP 401)" }).waitFor();

      await key.fill(KEY);
      await key.blur();
      await alert.waitFor({ state: "hidden" });
      await startRun(page, "echo", "sync", "with a key");
      await runEnds(page, "completed");
      await page
        .getByRole("log", { name: "Transcript" })
        .locator(".entry.agent")
        .filter({ hasText: "with a key" })
        .waitFor();

      // The key lives in session storage (this tab), not local storage, and survives a reload.
      expect(await page.evaluate(() => [Object.keys(localStorage).length, Object.keys(sessionStorage).length])).toEqual(
        [0, 1],
      );
      await page.reload();
      expect(await key.inputValue()).toBe(KEY);
      await startRun(page, "approval", "stream", "the rollout");
      await runEnds(page, "awaiting");
      await page.getByRole("textbox", { name: "Reply" }).fill("yes");
      await page.getByRole("button", { name: "Resume" }).click();
      await runEnds(page, "completed");
      expect(await page.getByRole("alert").isVisible()).toBe(false);
      expect(offOrigin(requests, secured.url)).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});

describe("the playground behind nginx, two instances on one Redis", { timeout: 90_000 }, () => {
  it("shows one run's requests served by both instances", async () => {
    const ids = await Promise.all(pair.map((instance) => instanceId(instance.url)));
    expect(new Set(ids).size).toBe(2);
    const { page, requests } = await openPage(browser);
    try {
      await page.goto(`${nginx!.url}/`);
      // Async: the POST, each poll and the events come through nginx in turn, each from the next instance.
      await startRun(page, "slow", "async", "ticks=8");
      await runEnds(page, "completed");
      await page.locator('#events li[data-type="run.completed"]').waitFor();
      const served = await page
        .locator("#events [data-instance]")
        .evaluateAll((badges) => badges.map((badge) => (badge as HTMLElement).dataset.instance));
      expect(new Set(served)).toEqual(new Set(ids));

      // A streamed approval resumed through the balancer: one run, its events numbered on across instances.
      await page.getByRole("button", { name: "New session" }).click();
      await startRun(page, "durable-approval", "stream", "the failover");
      await runEnds(page, "awaiting");
      await page.getByRole("textbox", { name: "Reply" }).fill("yes");
      await page.getByRole("button", { name: "Resume" }).click();
      await runEnds(page, "completed");
      await page.locator('#events li[data-type="run.completed"]').waitFor();
      const seqs = await page
        .locator("#events li[data-seq]")
        .evaluateAll((rows) => rows.map((row) => Number((row as HTMLElement).dataset.seq)));
      expect(seqs).toEqual(seqs.map((_, index) => index + 1));
      expect(offOrigin(requests, nginx!.url)).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it.runIf(process.env.UPDATE_SCREENSHOTS === "1")("writes docs/images/playground.png", async () => {
    const { page } = await openPage(browser, { width: 1200, height: 640 });
    try {
      await page.goto(`${nginx!.url}/`);
      await startRun(page, "tokens", "stream", "Hello! Streaming one token at a time.");
      await runEnds(page, "completed");
      await startRun(page, "approval", "async", "the deploy");
      await runEnds(page, "awaiting");
      await page.getByRole("textbox", { name: "Reply" }).fill("yes");
      await mkdir(images, { recursive: true });
      await page.screenshot({ path: path.join(images, "playground.png"), fullPage: true });
    } finally {
      await page.context().close();
    }
  });

  // Last: it kills one of the two instances.
  it("continues a stream from the other instance when the one serving it dies", async () => {
    const ids = await Promise.all(pair.map((instance) => instanceId(instance.url)));
    const { page, requests } = await openPage(browser);
    try {
      await page.goto(`${nginx!.url}/`);
      await startRun(page, "durable-steps", "stream", "12 steps delay=250");
      const parts = page.locator('#events li[data-type="message.part"]');
      await parts.nth(1).waitFor();
      const serving = await parts.first().locator("[data-instance]").getAttribute("data-instance");
      const victim = pair[ids.indexOf(serving!)]!;
      const survivor = ids.find((id) => id !== serving)!;
      victim.kill("SIGKILL");
      await victim.exited;

      const transcript = page.getByRole("log", { name: "Transcript" });
      await transcript.getByText(/Reconnected with Last-Event-ID: \d+/).waitFor();
      await runEnds(page, "completed");
      await page.locator('#events li[data-type="run.completed"]').waitFor();
      // The survivor adopted the durable run and streamed the rest: no step twice, no event missed or repeated.
      expect(await page.locator("#events li.reconnect [data-instance]").last().getAttribute("data-instance")).toBe(
        survivor,
      );
      const seqs = await page
        .locator("#events li[data-seq]")
        .evaluateAll((rows) => rows.map((row) => Number((row as HTMLElement).dataset.seq)));
      expect(seqs).toEqual(seqs.map((_, index) => index + 1));
      const text = (await transcript.locator(".entry.agent .body").last().textContent()) ?? "";
      const steps = [...text.matchAll(/step (\d+) of 12 \(attempt (\d+)\)/g)].map((match) => Number(match[1]));
      expect(steps).toEqual(Array.from({ length: 12 }, (_, index) => index + 1));
      expect(text).toContain("step 12 of 12 (attempt 2)");
      expect(offOrigin(requests, nginx!.url)).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});

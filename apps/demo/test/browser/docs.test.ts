/**
 * The API reference at `GET /docs` of the demo in Debian's Chromium: it loads, renders the
 * operations of the OpenAPI document, and fetches nothing from another origin. With
 * `UPDATE_SCREENSHOTS=1` it writes docs/images/api-reference.png.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, offOrigin, openPage } from "../support/browser.ts";
import { type Instance, startInstance, stopInstances } from "../support/cluster.ts";

const images = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs/images");

let instance: Instance;
let browser: Browser;

beforeAll(async () => {
  [instance, browser] = await Promise.all([startInstance({ ACP_DRAIN_MS: "500" }), launchBrowser()]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (instance) await stopInstances([instance]);
});

describe("GET /docs", { timeout: 90_000 }, () => {
  it("renders every operation of /openapi.json from files of its own origin", async () => {
    const document = (await (await fetch(`${instance.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.entries(document.paths).flatMap(([route, methods]) =>
      Object.keys(methods)
        .filter((method) => ["get", "post", "put", "patch", "delete"].includes(method))
        .map((method) => ({ route, method })),
    );
    expect(operations.length).toBeGreaterThan(8);

    const { page, requests, dialogs } = await openPage(browser, { width: 1200, height: 900 });
    const failures: string[] = [];
    page.on("pageerror", (error) => failures.push(error.message));
    page.on("requestfailed", (request) => failures.push(`${request.url()}: ${request.failure()?.errorText}`));
    try {
      const answer = await page.goto(`${instance.url}/docs`);
      expect(answer?.status()).toBe(200);
      // Swagger UI draws one block per operation, its path in data-path.
      for (const { route, method } of operations)
        await page.locator(`.opblock-${method} [data-path="${route}"]`).first().waitFor();
      expect(await page.locator(".opblock").count()).toBe(operations.length);
      await page.locator(".info .title").filter({ hasText: /\S/ }).waitFor();
      expect(offOrigin(requests, instance.url)).toEqual([]);
      expect(failures).toEqual([]);
      expect(dialogs).toEqual([]);

      if (process.env.UPDATE_SCREENSHOTS === "1") {
        await mkdir(images, { recursive: true });
        await page.screenshot({ path: path.join(images, "api-reference.png") });
      }
    } finally {
      await page.context().close();
    }
  });
});

/**
 * Debian's Chromium driven by playwright-core (Playwright's own browser downloads are not
 * available here; `.ci/run` installs the `chromium` package). One browser per test file; each
 * launch gets a fresh temporary profile, removed when the browser closes.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Generous waits: the suite must pass on a loaded two-core machine. */
export const WAIT_MS = 30_000;

/** Launches headless Chromium (no sandbox: CI runs as root; no background traffic of its own). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (.ci/run does it)`);
  // launch() starts Chromium with a new temporary --user-data-dir each time and deletes it on close().
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 60_000,
  });
}

/** Builds the playground when dist/playground is missing (`pnpm test` builds it before the tests). */
export async function ensurePlaygroundBuilt(): Promise<void> {
  if (existsSync(path.join(demoDir, "dist/playground/app.js"))) return;
  await promisify(execFile)("pnpm", ["run", "build"], { cwd: demoDir });
}

/** Every URL a page requests, to check that none leaves the origin. */
export function recordRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on("request", (request) => urls.push(request.url()));
  return urls;
}

/** The recorded URLs that are neither on `origin` nor inline data (`data:`, or a `blob:` of `origin`). */
export function offOrigin(urls: string[], origin: string): string[] {
  return urls.filter(
    (url) => !url.startsWith("data:") && !url.startsWith(`blob:${origin}/`) && new URL(url).origin !== origin,
  );
}

/** A new page whose default waits are the suite's; a dialog (an `alert()` from injected script) is recorded and dismissed. */
export async function openPage(
  browser: Browser,
  viewport = { width: 1280, height: 860 },
): Promise<{
  page: Page;
  requests: string[];
  dialogs: string[];
}> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const requests = recordRequests(page);
  const dialogs: string[] = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss().catch(() => {});
  });
  return { page, requests, dialogs };
}

/**
 * `GET /docs`: the API reference page and its files, all served by the app, nothing the page loads
 * from another origin; open without an API key, like `/openapi.json` and `/ping`.
 */
import { gunzipSync } from "node:zlib";
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it } from "vitest";
import { echo } from "../../test/support/agents.ts";
import { startApp, stopApps, type TestApp } from "../../test/support/app.ts";
import { createApp } from "./app.ts";
import { DOCS_CSP, locateDocsUi } from "./docs.ts";

afterEach(async () => {
  await stopApps(200);
});

/** The `src` and `href` URLs of an HTML page, in order. */
function referencedUrls(html: string): string[] {
  return [...html.matchAll(/\s(?:src|href)\s*=\s*"([^"]*)"/gi)].map((match) => match[1]!);
}

/** A URL the browser resolves on the page's own origin: relative or root-relative, no scheme, no `//`. */
const sameOrigin = (url: string): boolean => !/^[a-z][a-z0-9+.-]*:/i.test(url) && !url.startsWith("//");

/** What the page's files are served as, by their extension. */
const CONTENT_TYPES: Record<string, RegExp> = {
  ".js": /^text\/javascript; charset=utf-8$/,
  ".css": /^text\/css; charset=utf-8$/,
  ".png": /^image\/png$/,
  ".json": /^application\/json/,
};

/**
 * Hosts that Swagger UI's bundle names without fetching them when the page loads: XML and JSON
 * Schema namespaces and dialect ids, links in help texts and error messages, the social-media
 * patterns of its link detector, and placeholders. Any other host in a served file fails the test
 * until someone has checked, on an upgrade of `swagger-ui-dist`, that the page never fetches it.
 */
const NAMED_NOT_FETCHED = new Set([
  "www.w3.org",
  "datatracker.ietf.org",
  "www.rfc-editor.org",
  "json-schema.org",
  "spec.openapis.org",
  "github.com",
  "swagger.io",
  "spdx.org",
  "redux.js.org",
  "reactjs.org",
  "fb.me",
  "vladimirgorej.com",
  "example.com",
  "base",
  "www.tiktok.com",
  "twitter.com",
  "instagram.com",
  "www.facebook.com",
  "soundcloud.com",
]);

/** Hosts the bundle would fetch unless the page's configuration turns them off, with the setting that does. */
const TURNED_OFF: Record<string, RegExp> = {
  // The "valid" badge: an image from the validator of swagger.io, off with validatorUrl: null.
  "validator.swagger.io": /validatorUrl:\s*null/,
};

/** Hosts of fonts, CDNs and trackers: none may appear in any served file at all. */
const NEVER =
  /fonts\.(googleapis|gstatic)\.com|unpkg\.com|jsdelivr\.net|cdnjs\.|scarf\.sh|google-analytics|googletagmanager|segment\.(io|com)|sentry\.io|petstore\.swagger\.io/;

describe("GET /docs", () => {
  let served: TestApp;

  async function pageAndFiles(): Promise<{ html: string; files: Map<string, Response> }> {
    served = await startApp([echo], { docs: true });
    const page = await served.request("/docs");
    expect(page.status).toBe(200);
    const html = await page.text();
    const files = new Map<string, Response>();
    for (const url of referencedUrls(html))
      files.set(url, await served.request(new URL(url, "http://h/docs").pathname));
    return { html, files };
  }

  it("serves an HTML page that needs no inline script and forbids other origins", async () => {
    served = await startApp([echo], { docs: true });
    const page = await served.request("/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(DOCS_CSP).toMatch(/default-src 'self'/);
    expect(DOCS_CSP).toMatch(/script-src 'self'(;|$)/);
    expect(DOCS_CSP).toMatch(/connect-src 'self'(;|$)/);
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const html = await page.text();
    // Every script has a src: no inline script for a CSP to block.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\ssrc="/);
      expect(body!.trim()).toBe("");
    }
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/<style\b/i);
  });

  it("references only same-origin URLs, relative to the page, each answering 200 with its content type", async () => {
    const { html, files } = await pageAndFiles();
    const urls = referencedUrls(html);
    expect(urls.length).toBeGreaterThanOrEqual(4);
    for (const url of urls) {
      expect(sameOrigin(url), url).toBe(true);
      // Relative, not root-relative: the page works under a path prefix too.
      expect(url.startsWith("/"), url).toBe(false);
    }
    for (const [url, response] of files) {
      expect(response.status, url).toBe(200);
      const pathname = new URL(url, "http://h/docs").pathname;
      const extension = pathname.slice(pathname.lastIndexOf("."));
      expect(CONTENT_TYPES[extension], `${url} has a known kind`).toBeDefined();
      expect(response.headers.get("content-type"), url).toMatch(CONTENT_TYPES[extension]!);
      expect(response.headers.get("x-content-type-options"), url).toBe("nosniff");
    }
    // The page loads the UI and its starter, and the starter reads the document beside the page.
    expect(urls.some((url) => url.startsWith("docs/swagger-ui-bundle.js"))).toBe(true);
    expect(urls.some((url) => url.startsWith("docs/swagger-ui.css"))).toBe(true);
    const init = urls.find((url) => url.startsWith("docs/init.js"));
    expect(init).toBeDefined();
    const script = await files.get(init!)!.text();
    expect(script).toContain('new URL("openapi.json", document.baseURI)');
    const document = await served.request("/openapi.json");
    expect(document.status).toBe(200);
  });

  it("serves no file that would fetch from another origin as the page loads", async () => {
    const { files } = await pageAndFiles();
    const texts = new Map<string, string>();
    for (const [url, response] of files)
      if (!response.headers.get("content-type")!.startsWith("image/")) texts.set(url, await response.text());
    const init = [...texts].find(([url]) => url.startsWith("docs/init.js"))![1];
    const unknown: string[] = [];
    for (const [url, text] of texts) {
      expect(text, url).not.toMatch(NEVER);
      // No source map for developer tools to ask for (it is not served).
      expect(text, url).not.toMatch(/sourceMappingURL=/);
      // No protocol-relative URL either: the browser would fetch it from another host.
      expect(text, url).not.toMatch(/["'(]\/\/[a-z0-9-]+\.[a-z0-9.-]+/i);
      if (url.includes(".css")) {
        // A style sheet fetches what its url() and @import name: data: URLs only.
        for (const match of text.matchAll(/url\(\s*["']?([^"')]+)/g)) expect(match[1], url).toMatch(/^data:/);
        expect(text, url).not.toMatch(/@import/);
        continue;
      }
      for (const match of text.matchAll(/\b(?:https?|wss?):\/\/([a-z0-9.-]+)/gi)) {
        const host = match[1]!.toLowerCase();
        if (NAMED_NOT_FETCHED.has(host)) continue;
        const setting = TURNED_OFF[host];
        if (setting !== undefined) {
          expect(init, `init.js turns ${host} off`).toMatch(setting);
          continue;
        }
        unknown.push(`${url}: ${host}`);
      }
    }
    expect([...new Set(unknown)]).toEqual([]);
    // Query parameters may not point the page at another document or configuration.
    expect(init).toMatch(/queryConfigEnabled:\s*false/);
  });

  it("answers 304 to a client that has a file, and gzip to one that accepts it", async () => {
    served = await startApp([echo], { docs: true });
    const first = await served.request("/docs/swagger-ui.css?v=1");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get("cache-control")).toMatch(/max-age=\d+/);
    const plain = new Uint8Array(await first.arrayBuffer());
    const again = await served.request("/docs/swagger-ui.css", { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const zipped = await served.request("/docs/swagger-ui.css", { headers: { "accept-encoding": "gzip, br" } });
    expect(zipped.status).toBe(200);
    expect(zipped.headers.get("content-encoding")).toBe("gzip");
    expect(zipped.headers.get("vary")).toBe("Accept-Encoding");
    const unzipped = gunzipSync(new Uint8Array(await zipped.arrayBuffer()));
    expect(unzipped.equals(plain), "the gzip holds the same bytes").toBe(true);
    const page = await served.request("/docs", {
      headers: { "if-none-match": (await served.request("/docs")).headers.get("etag")! },
    });
    expect(page.status).toBe(304);
  });

  it("sends /docs/ to /docs, and answers an ACP 404 for a file it does not have", async () => {
    served = await startApp([echo], { docs: true });
    const slash = await served.request("/docs/");
    expect(slash.status).toBe(308);
    expect(slash.headers.get("location")).toBe("../docs");
    const missing = await served.request("/docs/swagger-ui-bundle.js.map");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: "not_found", message: expect.any(String) });
    const traversal = await served.request("/docs/..%2Fpackage.json");
    expect(traversal.status).toBe(404);
  });

  it("is off by default, implies /openapi.json, and refuses openapi: false", async () => {
    const plain = await startApp([echo]);
    expect((await plain.request("/docs")).status).toBe(404);
    expect((await plain.request("/docs/init.js")).status).toBe(404);
    const docsOnly = await startApp([echo], { docs: true });
    expect((await docsOnly.request("/openapi.json")).status).toBe(200);
    expect(() => createApp([echo], { store: new MemoryStore(), docs: true, openapi: false })).toThrow(
      /\[acp\] createApp\(\): docs: true .* openapi: false/,
    );
    expect(() => createApp([echo], { store: new MemoryStore(), docs: "yes" as never })).toThrow(
      /\[acp\] createApp\(\): docs must be true or false, got "yes"/,
    );
  });

  it("names the missing package and how to install it when the UI package is not installed", () => {
    expect(() => locateDocsUi("createApp()", "@acp/no-such-ui")).toThrow(
      /^\[acp\] createApp\(\): docs: true needs the package @acp\/no-such-ui, an optional peer dependency of @acp\/core: install it beside @acp\/core \(npm install @acp\/no-such-ui\), or leave docs off$/,
    );
    expect(locateDocsUi("createApp()").version).toMatch(/^5\./);
  });
});

describe("the API description with auth on", () => {
  it("answers /docs, its files and /openapi.json without a key, while the API still needs one", async () => {
    const served = await startApp([echo], { docs: true, auth: { apiKeys: ["k-1"] } });
    const html = await (await served.request("/docs")).text();
    const open = [
      "/docs",
      "/openapi.json",
      ...referencedUrls(html).map((url) => new URL(url, "http://h/docs").pathname),
    ];
    for (const path of open) expect((await served.request(path)).status, path).toBe(200);
    for (const path of ["/agents", "/runs/4f1c2b1e-9b6e-4f36-9d7e-0c1b8a6f2d3e", "/metrics"]) {
      const refused = await served.request(path);
      expect(refused.status, path).toBe(401);
    }
    const run = await served.request("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "echo", input: [{ parts: [{ content: "hi" }] }] }),
    });
    expect(run.status).toBe(401);
    expect((await served.request("/agents", { headers: { "x-api-key": "k-1" } })).status).toBe(200);
  });
});

/**
 * `GET /docs`: the API reference page of an app, Swagger UI rendering the app's own
 * `/openapi.json`. Every byte the page loads is served by the app itself, from the optional peer
 * dependency `swagger-ui-dist`: no CDN, no font, no validator badge, no telemetry; the page works
 * offline and behind a firewall.
 *
 * `swagger-ui-dist` (about 2 MB) is loaded only by an app built with `docs: true`: an app without
 * the page never reads it, and a project that does not use the page need not install it.
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import type { Context, Handler } from "hono";

/** The package the page is built from: an optional peer dependency of `@acp/core`. */
export const DOCS_UI_PACKAGE = "swagger-ui-dist";

/** One file the page is made of, kept in memory: it is served as is to every request. */
interface DocsFile {
  body: Uint8Array;
  contentType: string;
  cacheControl: string;
  /** A strong validator of the body, for `If-None-Match`. */
  etag: string;
  /**
   * The gzip of the body, made on the first request that accepts it (only for text worth it), off
   * the event loop: the UI's script takes some 100 ms to compress.
   */
  gzip?: Promise<Uint8Array>;
  compressible: boolean;
}

/** The files under `/docs/`, by name, and the page itself. */
export interface DocsPage {
  page: DocsFile;
  files: ReadonlyMap<string, DocsFile>;
}

/**
 * How the page and its init script are cached: revalidated on every load (a cheap 304), so a new
 * version of the app shows at once. The UI's own files change only with the package's version,
 * which their URLs carry (`?v=`): a browser keeps them for a day without asking.
 */
const REVALIDATE = "no-cache";
const VERSIONED = "public, max-age=86400";

/**
 * The page's Content-Security-Policy: scripts, styles, images and requests of its own origin only
 * (Swagger UI sets inline `style` attributes and draws its icons as `data:` images). The browser
 * itself then refuses any request to another origin, whatever the UI's code tries.
 */
export const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join("; ");

/** The UI's files the page uses, with their content types. */
const UI_FILES: Readonly<Record<string, string>> = {
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui.css": "text/css; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

/**
 * The script that starts the UI, served as a file of its own so that the page has no inline script
 * (a strict CSP may forbid them). Every setting that could make the browser fetch from another
 * origin is off: the validator badge (`validatorUrl: null`, else it calls validator.swagger.io),
 * and the `?url=` / `?configUrl=` query parameters (a link could point the page at any document).
 * The document's URL is relative to the page, so the page works under a path prefix or a proxy.
 */
const INIT_SCRIPT = `"use strict";
// Starts Swagger UI on this server's own OpenAPI document (served by @acp/core).
window.addEventListener("DOMContentLoaded", function startApiReference() {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    validatorUrl: null,
    queryConfigEnabled: false,
    withCredentials: false,
    tryItOutEnabled: false,
    persistAuthorization: false,
    displayRequestDuration: true,
  });
});
`;

const PAGE_CSS = `html { box-sizing: border-box; overflow-y: scroll; }
*, *::before, *::after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; }
`;

/** The HTML page: relative URLs only (the page is `/docs`, so `docs/x` is `/docs/x` under any prefix). */
function pageHtml(version: string): string {
  const v = encodeURIComponent(version);
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>ACP API reference</title>
    <link rel="icon" type="image/png" href="docs/favicon-32x32.png?v=${v}">
    <link rel="stylesheet" href="docs/swagger-ui.css?v=${v}">
    <link rel="stylesheet" href="docs/page.css?v=${v}">
  </head>
  <body>
    <noscript>This page needs JavaScript. The API document itself is at <a href="openapi.json">openapi.json</a>.</noscript>
    <div id="swagger-ui"></div>
    <script src="docs/swagger-ui-bundle.js?v=${v}"></script>
    <script src="docs/init.js?v=${v}"></script>
  </body>
</html>
`;
}

function docsFile(body: Uint8Array | string, contentType: string, cacheControl: string): DocsFile {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const digest = createHash("sha256").update(bytes).digest("base64url").slice(0, 27);
  return {
    body: bytes,
    contentType,
    cacheControl,
    etag: `"${digest}"`,
    compressible: !contentType.startsWith("image/") && bytes.byteLength > 1024,
  };
}

/**
 * The UI package's folder and version, resolved from `@acp/core` (`packageName` is for tests).
 * @throws Error naming the missing package and how to install it, when it is not installed.
 */
export function locateDocsUi(who: string, packageName: string = DOCS_UI_PACKAGE): { dir: string; version: string } {
  let manifestPath: string;
  try {
    manifestPath = createRequire(import.meta.url).resolve(`${packageName}/package.json`);
  } catch (cause) {
    throw new Error(
      `[acp] ${who}: docs: true needs the package ${packageName}, an optional peer dependency of @acp/core: ` +
        `install it beside @acp/core (npm install ${packageName}), or leave docs off`,
      { cause },
    );
  }
  const { version } = JSON.parse(readFileSync(manifestPath, "utf8")) as { version: string };
  return { dir: path.dirname(manifestPath), version };
}

/** Loaded once per process: every app with docs serves the same bytes. */
let loaded: DocsPage | undefined;

/**
 * Reads the page's files, once per process, when the first app with `docs: true` is built.
 * @param who names the caller in the error thrown when `swagger-ui-dist` is not installed.
 * @throws Error when `swagger-ui-dist` is not installed or lacks one of its files.
 */
export function loadDocsPage(who: string): DocsPage {
  if (loaded !== undefined) return loaded;
  const { dir, version } = locateDocsUi(who);
  const files = new Map<string, DocsFile>();
  for (const [name, contentType] of Object.entries(UI_FILES)) {
    let body: Uint8Array;
    try {
      body = readFileSync(path.join(dir, name));
    } catch (cause) {
      throw new Error(`[acp] ${who}: docs: ${DOCS_UI_PACKAGE}@${version} has no ${name}`, { cause });
    }
    // The source map is not served: a browser's developer tools would ask for it in vain.
    if (name.endsWith(".css") || name.endsWith(".js"))
      body = new TextEncoder().encode(
        new TextDecoder().decode(body).replace(/\n?\/[*/]# sourceMappingURL=\S+( \*\/)?\s*$/, "\n"),
      );
    files.set(name, docsFile(body, contentType, VERSIONED));
  }
  files.set("page.css", docsFile(PAGE_CSS, "text/css; charset=utf-8", VERSIONED));
  files.set("init.js", docsFile(INIT_SCRIPT, "text/javascript; charset=utf-8", REVALIDATE));
  loaded = { page: docsFile(pageHtml(version), "text/html; charset=utf-8", REVALIDATE), files };
  return loaded;
}

/** Whether an `If-None-Match` header names `etag` (or is `*`). */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch
    .split(",")
    .map((tag) => tag.trim().replace(/^W\//, ""))
    .some((tag) => tag === etag || tag === "*");
}

const gzipAsync = promisify(gzip);

/** The answer for one of the page's files: 304 when the client has it, gzip when it accepts it. */
async function serve(c: Context, file: DocsFile, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = {
    "cache-control": file.cacheControl,
    etag: file.etag,
    "x-content-type-options": "nosniff",
    ...extra,
  };
  if (file.compressible) headers.vary = "Accept-Encoding";
  if (matches(c.req.header("if-none-match"), file.etag)) return c.body(null, 304, headers);
  headers["content-type"] = file.contentType;
  if (file.compressible && /\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
    file.gzip ??= gzipAsync(file.body).catch((error: unknown) => {
      file.gzip = undefined; // the next request tries again
      throw error;
    });
    headers["content-encoding"] = "gzip";
    return c.body((await file.gzip) as Uint8Array<ArrayBuffer>, 200, headers);
  }
  return c.body(file.body as Uint8Array<ArrayBuffer>, 200, headers);
}

/**
 * Adds `GET /docs` (the page), `GET /docs/` (a redirect to it) and `GET /docs/{file}` (its
 * files) through `get` (which registers a route). The page reads `openapi.json` beside it, which the app serves too.
 */
export function addDocsRoutes(get: (path: string, handler: Handler) => unknown, page: DocsPage): void {
  get("/docs", (c) =>
    serve(c, page.page, {
      "content-security-policy": DOCS_CSP,
      "referrer-policy": "no-referrer",
      "x-frame-options": "SAMEORIGIN",
    }),
  );
  // The page's relative URLs need it at `/docs`: `/docs/` would look for `/docs/docs/…`.
  get("/docs/", (c) => c.body(null, 308, { location: "../docs" }));
  get("/docs/:file", (c) => {
    const file = page.files.get(c.req.param("file") ?? "");
    if (file === undefined)
      return c.json({ code: "not_found", message: `No file ${c.req.param("file")} in /docs` }, 404);
    return serve(c, file);
  });
}

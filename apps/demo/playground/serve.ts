/**
 * Serves the built playground (dist/playground, from `pnpm --filter @acp/demo build`): the page at
 * `GET /`, its script and stylesheet under `/playground/`. Everything comes from these files, so
 * the page works offline; its Content-Security-Policy allows this origin only (plus `data:` and
 * `blob:` images for the base64 parts agents send), a second wall behind the page's escaping.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const BUILT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/playground");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export interface PlaygroundOptions {
  /** Sent as the `acp-instance` header, like the API's own answers. */
  instanceId: string;
  /** Where the built files are. @default apps/demo/dist/playground */
  dir?: string;
}

/**
 * A request handler for the playground's paths; `undefined` for every other request, which the
 * caller passes on to the ACP app. The page needs no API key: the API calls it makes do.
 */
export function playgroundHandler({
  instanceId,
  dir = BUILT,
}: PlaygroundOptions): (request: Request) => Promise<Response> | undefined {
  return function servePlayground(request) {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    // The path from the URL string, without building a URL object: this runs before every API request.
    const { url } = request;
    const start = url.indexOf("/", url.indexOf("//") + 2);
    if (start === -1) return undefined;
    const query = url.indexOf("?", start);
    const pathname = query === -1 ? url.slice(start) : url.slice(start, query);
    const file = pathname === "/" ? "index.html" : /^\/playground\/([\w-]+\.(?:js|css))$/.exec(pathname)?.[1];
    if (file === undefined) return undefined;
    return readFile(path.join(dir, file)).then(
      (bytes) =>
        new Response(request.method === "HEAD" ? null : bytes, {
          headers: {
            "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
            "cache-control": "no-cache",
            "content-security-policy": CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "acp-instance": instanceId,
          },
        }),
      () =>
        new Response(
          file === "index.html"
            ? "The playground is not built: run `pnpm --filter @acp/demo build` (or `pnpm demo`, which builds it).\n"
            : "Not found\n",
          {
            status: file === "index.html" ? 503 : 404,
            headers: { "content-type": "text/plain; charset=utf-8", "acp-instance": instanceId },
          },
        ),
    );
  };
}

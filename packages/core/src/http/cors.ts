/**
 * Optional CORS for browser clients, on top of `hono/cors`, with the headers ACP needs: the
 * `Run-ID` and `ACP-Instance` response headers are readable, and `Last-Event-ID` and the API-key headers may be sent.
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { isOrigin } from "../origin.ts";

export interface CorsOptions {
  /**
   * Browser origins allowed to call the API, each exactly as a browser sends it
   * (`https://app.example.com`, no path or trailing slash), or `"*"` for any origin.
   */
  origins: readonly string[] | "*";
  /** How long a browser may cache a preflight answer, in seconds. @default 600 */
  maxAgeSeconds?: number;
}

/** The request headers an ACP client may send. */
const ALLOW_HEADERS = ["Content-Type", "Accept", "Authorization", "X-API-Key", "Last-Event-ID"];

/**
 * Builds the middleware; it answers preflight requests itself, before authentication.
 * @throws TypeError when the origins are neither `"*"` nor a non-empty list of origins
 * @example
 * app.use(acpCors({ origins: ["https://app.example.com"] }));
 */
export function acpCors(options: CorsOptions): MiddlewareHandler {
  const { origins, maxAgeSeconds = 600 } = options ?? ({} as CorsOptions);
  if (origins !== "*") {
    if (!Array.isArray(origins) || origins.length === 0)
      throw new TypeError('[acp] createApp(): cors.origins must be "*" or a non-empty list of origins');
    for (const origin of origins) {
      if (!isOrigin(origin))
        throw new TypeError(
          `[acp] createApp(): cors.origins: ${JSON.stringify(origin)} is not an origin like https://app.example.com`,
        );
    }
  }
  if (!Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 0)
    throw new TypeError(`[acp] createApp(): cors.maxAgeSeconds must be a whole number, got ${maxAgeSeconds}`);
  return cors({
    origin: origins === "*" ? "*" : [...origins],
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ALLOW_HEADERS,
    exposeHeaders: ["Run-ID", "ACP-Instance"],
    maxAge: maxAgeSeconds,
  });
}

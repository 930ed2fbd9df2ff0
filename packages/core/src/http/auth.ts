/**
 * Optional API-key authentication: a Hono middleware that lets a request through only with one
 * of the configured keys. `GET /ping` stays open so load balancers can probe without a key.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { requestHeader } from "./request-header.ts";

export interface AuthOptions {
  /**
   * The accepted API keys; a client sends one as `Authorization: Bearer <key>` or as
   * `X-API-Key: <key>`. Several keys allow rotation: add the new key, move clients, drop the old.
   * Each key must be non-empty visible ASCII without spaces.
   */
  apiKeys: readonly string[];
}

/** A key that may travel in an HTTP header: visible ASCII, no spaces. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The key a request presents, from `Authorization: Bearer …` first, else from `X-API-Key`. */
function presentedKey(c: Context): string | undefined {
  const authorization = requestHeader(c, "authorization");
  const bearer = authorization === undefined ? undefined : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1];
  return bearer ?? requestHeader(c, "x-api-key")?.trim();
}

/**
 * Checks the option when the app is built, so a wrong configuration fails at start-up.
 * @throws TypeError when the list is missing or empty, or a key is empty or not header-safe
 */
function validate(options: AuthOptions): readonly string[] {
  const keys = options?.apiKeys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new TypeError("[acp] createApp(): auth.apiKeys must list at least one key");
  keys.forEach((key: unknown, index) => {
    if (typeof key !== "string" || key === "")
      throw new TypeError(`[acp] createApp(): auth.apiKeys[${index}] is empty`);
    // The key itself is never part of the message: it may be a real secret with a typo.
    if (!HEADER_SAFE.test(key))
      throw new TypeError(`[acp] createApp(): auth.apiKeys[${index}] must be visible ASCII without spaces`);
  });
  return keys as readonly string[];
}

/**
 * Builds the middleware. A missing or wrong key gets `401` with `WWW-Authenticate: Bearer` and
 * the ACP error `{ code: "invalid_input", message: "Missing or invalid API key" }`: ACP 0.2's
 * error codes have no dedicated authentication code, so the closest one is used.
 *
 * Keys are compared in constant time: the presented key and every configured key are hashed with
 * SHA-256 and compared with `crypto.timingSafeEqual`, against every key without an early exit, so
 * the answer time tells nothing about how close a guess was or which key matched.
 * @example
 * app.use(apiKeyAuth({ apiKeys: process.env.ACP_API_KEYS!.split(",") }));
 */
export function apiKeyAuth(options: AuthOptions): MiddlewareHandler {
  const digests = validate(options).map(sha256);

  function accepts(key: string): boolean {
    const candidate = sha256(key);
    let matched = false;
    for (const digest of digests) matched = timingSafeEqual(candidate, digest) || matched;
    return matched;
  }

  return async function apiKeyAuthMiddleware(c, next) {
    const isHealthCheck = c.req.path === "/ping" && (c.req.method === "GET" || c.req.method === "HEAD");
    if (isHealthCheck) return next();
    const key = presentedKey(c);
    if (key === undefined || !accepts(key)) {
      return c.json({ code: "invalid_input", message: "Missing or invalid API key" }, 401, {
        "WWW-Authenticate": "Bearer",
      });
    }
    await next();
  };
}

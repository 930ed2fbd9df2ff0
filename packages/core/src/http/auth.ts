/**
 * Optional API-key authentication: a Hono middleware that lets a request through only with one
 * of the configured keys, and sets the request's tenant from the key. `GET /ping` stays open so
 * load balancers can probe without a key.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { requestHeader } from "./request-header.ts";
import { TENANT_VARIABLE } from "./tenant.ts";

/** An API key with the tenant it acts for: keys of one tenant share its runs and sessions. */
export interface NamedApiKey {
  /** The key, as a client sends it: non-empty visible ASCII without spaces. */
  key: string;
  /** The tenant's name: 1 to 128 letters, digits, `.`, `_`, `-` or `@`. Stored with its runs. */
  tenant: string;
}

export interface AuthOptions {
  /**
   * The accepted API keys; a client sends one as `Authorization: Bearer <key>` or as
   * `X-API-Key: <key>`. Each key must be non-empty visible ASCII without spaces.
   *
   * A run and a session belong to the tenant of the key that created them; other tenants get 404
   * for them. A plain string key is a tenant of its own, named by a digest of the key. Name the
   * tenant (`{ key, tenant }`) to give several keys one tenant, as a rotation needs: add the new
   * key with the same tenant, move the clients, drop the old key.
   */
  apiKeys: readonly (string | NamedApiKey)[];
}

/** A key that may travel in an HTTP header: visible ASCII, no spaces. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;
const TENANT_NAME = /^[A-Za-z0-9._@-]{1,128}$/;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The key a request presents, from `Authorization: Bearer …` first, else from `X-API-Key`. */
function presentedKey(c: Context): string | undefined {
  const authorization = requestHeader(c, "authorization");
  const bearer = authorization === undefined ? undefined : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1];
  return bearer ?? requestHeader(c, "x-api-key")?.trim();
}

/** A configured key as the middleware keeps it: the key's digest, never the key. */
interface KnownKey {
  digest: Buffer;
  tenant: string;
}

/**
 * Checks the option when the app is built, so a wrong configuration fails at start-up, and
 * keeps each key's digest and tenant. A plain key's tenant is `key:` and the first 128 bits of
 * its SHA-256 digest in hex: stable, and it does not give the key away.
 * @throws TypeError when the list is missing or empty, a key is empty, not header-safe or listed
 * twice, or a tenant name is not valid
 */
function validate(options: AuthOptions): KnownKey[] {
  const entries = options?.apiKeys;
  if (!Array.isArray(entries) || entries.length === 0)
    throw new TypeError("[acp] createApp(): auth.apiKeys must list at least one key");
  const known: KnownKey[] = [];
  entries.forEach((entry: unknown, index) => {
    const named = typeof entry === "object" && entry !== null;
    const key: unknown = named ? (entry as NamedApiKey).key : entry;
    const where = `auth.apiKeys[${index}]${named ? ".key" : ""}`;
    if (typeof key !== "string" || key === "") throw new TypeError(`[acp] createApp(): ${where} is empty`);
    // The key itself is never part of a message: it may be a real secret with a typo.
    if (!HEADER_SAFE.test(key)) throw new TypeError(`[acp] createApp(): ${where} must be visible ASCII without spaces`);
    const digest = sha256(key);
    if (known.some((other) => other.digest.equals(digest)))
      throw new TypeError(`[acp] createApp(): ${where} repeats an earlier key`);
    let tenant = `key:${digest.subarray(0, 16).toString("hex")}`;
    if (named) {
      const name: unknown = (entry as NamedApiKey).tenant;
      if (typeof name !== "string" || !TENANT_NAME.test(name))
        throw new TypeError(
          `[acp] createApp(): auth.apiKeys[${index}].tenant must be 1 to 128 letters, digits, ".", "_", "-" or "@"`,
        );
      tenant = name;
    }
    known.push({ digest, tenant });
  });
  return known;
}

/**
 * Builds the middleware. A missing or wrong key gets `401` with `WWW-Authenticate: Bearer` and
 * the ACP error `{ code: "invalid_input", message: "Missing or invalid API key" }`: ACP 0.2's
 * error codes have no dedicated authentication code, so the closest one is used.
 *
 * Keys are compared in constant time: the presented key and every configured key are hashed with
 * SHA-256 and compared with `crypto.timingSafeEqual`, against every key without an early exit, so
 * the answer time tells nothing about how close a guess was or which key matched.
 *
 * An accepted request's tenant is set on the context as `acpTenant` (see {@link AuthOptions.apiKeys}).
 * @example
 * app.use(apiKeyAuth({ apiKeys: process.env.ACP_API_KEYS!.split(",") }));
 */
export function apiKeyAuth(options: AuthOptions): MiddlewareHandler {
  const known = validate(options);

  /** The tenant of the key, or `undefined` when no configured key matches. */
  function tenantOf(key: string): string | undefined {
    const candidate = sha256(key);
    let tenant: string | undefined;
    for (const entry of known) if (timingSafeEqual(candidate, entry.digest)) tenant = entry.tenant;
    return tenant;
  }

  return async function apiKeyAuthMiddleware(c, next) {
    const isHealthCheck = c.req.path === "/ping" && (c.req.method === "GET" || c.req.method === "HEAD");
    if (isHealthCheck) return next();
    const key = presentedKey(c);
    const tenant = key === undefined ? undefined : tenantOf(key);
    if (tenant === undefined) {
      return c.json({ code: "invalid_input", message: "Missing or invalid API key" }, 401, {
        "WWW-Authenticate": "Bearer",
      });
    }
    c.set(TENANT_VARIABLE, tenant);
    await next();
  };
}

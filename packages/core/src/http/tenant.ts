/**
 * The tenant of a request, as the authentication middleware sets it on the Hono context. The
 * routes pass it to the runtime, which keeps runs and sessions of other tenants out of reach.
 */
import type { Context } from "hono";

/**
 * The name of the context variable that holds the request's tenant. `apiKeyAuth` sets it; a
 * middleware of your own in front of the app may set it instead (`c.set("acpTenant", id)`).
 */
export const TENANT_VARIABLE = "acpTenant";

/** The request's tenant; `undefined` without one (no authentication: no tenancy). */
export function requestTenant(c: Context): string | undefined {
  const tenant: unknown = c.get(TENANT_VARIABLE);
  return typeof tenant === "string" ? tenant : undefined;
}

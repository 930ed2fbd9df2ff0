/**
 * Tenancy: with API keys, each run and each session belongs to the tenant of the key that
 * created it. A tenant is an opaque string set per request (see `apiKeyAuth`); without one
 * (no authentication) there is no tenancy and every run and session is everyone's.
 */
import { createHash } from "node:crypto";
import type { StoredRun } from "./store.ts";

/**
 * Whether a request of `tenant` may see the run: always without a tenant, else only when the
 * run was created by the same tenant. A run created without one (before keys were turned on)
 * is nobody's then.
 */
export function visibleTo(record: StoredRun, tenant: string | undefined): boolean {
  return tenant === undefined || record.tenant === tenant;
}

/**
 * The id under which the store keeps a tenant's session: the client's id itself without a
 * tenant, else a UUID derived from both (a SHA-256 digest shaped as a version 8 UUID). Two
 * tenants using one session id thus write two sessions, found in O(1); neither can name the
 * other's, since a client's id is always derived again and a digest cannot be inverted.
 */
export function sessionStoreId(sessionId: string, tenant: string | undefined): string {
  if (tenant === undefined) return sessionId;
  // The NUL separator keeps ("a", "bc") and ("ab", "c") apart.
  const digest = createHash("sha256").update(`acp-session\0${tenant}\0${sessionId}`, "utf8").digest();
  digest[6] = (digest[6]! & 0x0f) | 0x80;
  digest[8] = (digest[8]! & 0x3f) | 0x80;
  const hex = digest.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

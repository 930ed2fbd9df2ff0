import { describe, expect, it } from "vitest";
import type { StoredRun } from "./store.ts";
import { sessionStoreId, visibleTo } from "./tenant.ts";

const SESSION = "6f1c0d2e-4a4b-4c8e-9a57-0d6f3b1e2a90";

describe("sessionStoreId", () => {
  it("is the client's id without a tenant", () => {
    expect(sessionStoreId(SESSION, undefined)).toBe(SESSION);
  });

  it("derives a stable version 8 UUID per tenant and session", () => {
    const id = sessionStoreId(SESSION, "acme");
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(sessionStoreId(SESSION, "acme")).toBe(id);
    expect(id).not.toBe(SESSION);
    expect(sessionStoreId(SESSION, "other")).not.toBe(id);
  });

  it("keeps the tenant and the session apart", () => {
    expect(sessionStoreId("bc", "a")).not.toBe(sessionStoreId("c", "ab"));
  });
});

describe("visibleTo", () => {
  const record = (tenant?: string): StoredRun => ({
    run: {} as StoredRun["run"],
    version: 1,
    owner: "instance",
    ...(tenant === undefined ? {} : { tenant }),
  });

  it("shows every run without a tenant, else only the tenant's own", () => {
    expect(visibleTo(record("acme"), undefined)).toBe(true);
    expect(visibleTo(record(), undefined)).toBe(true);
    expect(visibleTo(record("acme"), "acme")).toBe(true);
    expect(visibleTo(record("acme"), "other")).toBe(false);
    expect(visibleTo(record(), "acme")).toBe(false);
  });
});

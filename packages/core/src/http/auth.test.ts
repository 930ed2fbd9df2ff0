import { createHash } from "node:crypto";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type AuthOptions, apiKeyAuth } from "./auth.ts";
import { requestTenant } from "./tenant.ts";

function appWith(apiKeys: string[]): Hono {
  const app = new Hono();
  app.use(apiKeyAuth({ apiKeys }));
  app.get("/ping", (c) => c.json({}));
  app.get("/agents", (c) => c.json({ agents: [] }));
  return app;
}

describe("apiKeyAuth", () => {
  const app = appWith(["key-one", "key-two"]);

  it("answers 401 with an ACP error and WWW-Authenticate when the key is missing", async () => {
    const response = await app.request("/agents");
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe("Bearer");
    expect(await response.json()).toEqual({ code: "invalid_input", message: "Missing or invalid API key" });
  });

  it("refuses a wrong key, a prefix of a key and a key with another scheme", async () => {
    const refused: Record<string, string>[] = [
      { authorization: "Bearer key-three" },
      { "x-api-key": "key-on" },
      { authorization: "Basic key-one" },
      { authorization: "Bearer" },
    ];
    for (const headers of refused) {
      expect((await app.request("/agents", { headers })).status, JSON.stringify(headers)).toBe(401);
    }
  });

  it("accepts every configured key, as a bearer token or as X-API-Key", async () => {
    const accepted: Record<string, string>[] = [
      { authorization: "Bearer key-one" },
      { authorization: "bearer key-two" },
      { "x-api-key": "key-two" },
    ];
    for (const headers of accepted) {
      expect((await app.request("/agents", { headers })).status, JSON.stringify(headers)).toBe(200);
    }
  });

  it("falls back to X-API-Key when Authorization carries another scheme", async () => {
    const response = await app.request("/agents", {
      headers: { authorization: "Basic Zm9vOmJhcg==", "x-api-key": "key-one" },
    });
    expect(response.status).toBe(200);
  });

  it("leaves GET /ping open for load balancers", async () => {
    expect((await app.request("/ping")).status).toBe(200);
    expect((await app.request("/ping", { method: "POST" })).status).toBe(401);
  });

  it("throws when the app is built with no keys, an empty key or a key with spaces, without printing the key", () => {
    expect(() => apiKeyAuth({ apiKeys: [] })).toThrow(/at least one key/);
    expect(() => apiKeyAuth({} as { apiKeys: string[] })).toThrow(/at least one key/);
    expect(() => apiKeyAuth({ apiKeys: ["good", ""] })).toThrow(/apiKeys\[1\] is empty/);
    expect(() => apiKeyAuth({ apiKeys: ["s3cret value"] })).toThrow(/visible ASCII/);
    expect(() => apiKeyAuth({ apiKeys: ["s3cret value"] })).not.toThrow(/s3cret/);
  });

  it("sets the tenant of the key on the context: its name, else a digest of the key", async () => {
    const tenants = new Hono();
    tenants.use(apiKeyAuth({ apiKeys: ["plain-key", { key: "old", tenant: "acme" }, { key: "new", tenant: "acme" }] }));
    tenants.get("/whoami", (c) => c.json({ tenant: requestTenant(c) ?? null }));
    const tenantOf = async (key: string) =>
      ((await (await tenants.request("/whoami", { headers: { "x-api-key": key } })).json()) as { tenant: string })
        .tenant;
    const digest = createHash("sha256").update("plain-key").digest("hex");
    expect(await tenantOf("plain-key")).toBe(`key:${digest.slice(0, 32)}`);
    expect(await tenantOf("old")).toBe("acme");
    expect(await tenantOf("new")).toBe("acme");
  });

  it("throws when a key is listed twice or a tenant name is not valid, without printing the key", () => {
    const build = (apiKeys: unknown[]) => () => apiKeyAuth({ apiKeys } as AuthOptions);
    expect(build(["s3cret", { key: "s3cret", tenant: "a" }])).toThrow(/apiKeys\[1\]\.key repeats an earlier key/);
    expect(build(["s3cret", { key: "s3cret", tenant: "a" }])).not.toThrow(/s3cret/);
    expect(build([{ key: "", tenant: "a" }])).toThrow(/apiKeys\[0\]\.key is empty/);
    expect(build([{ key: "s3cret" }])).toThrow(/apiKeys\[0\]\.tenant must be/);
    expect(build([{ key: "s3cret", tenant: "has space" }])).toThrow(/apiKeys\[0\]\.tenant must be/);
    expect(build([{ key: "s3cret", tenant: "x".repeat(129) }])).toThrow(/tenant must be/);
    expect(build([{ key: "s3cret", tenant: "team@example.com" }])).not.toThrow();
  });
});

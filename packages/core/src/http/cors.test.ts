import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { acpCors } from "./cors.ts";

function appWith(origins: string[] | "*"): Hono {
  const app = new Hono();
  app.use(acpCors({ origins }));
  app.post("/runs", (c) => {
    c.header("Run-ID", "r1");
    return c.json({});
  });
  return app;
}

const preflight = (origin: string): RequestInit => ({
  method: "OPTIONS",
  headers: {
    origin,
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type, last-event-id",
  },
});

describe("acpCors", () => {
  it("answers a preflight from an allowed origin with the headers ACP clients send", async () => {
    const response = await appWith(["https://app.example.com"]).request("/runs", preflight("https://app.example.com"));
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const allowed = response.headers.get("access-control-allow-headers")?.toLowerCase().split(",") ?? [];
    expect(allowed).toEqual(expect.arrayContaining(["content-type", "last-event-id", "authorization", "x-api-key"]));
    expect(response.headers.get("access-control-max-age")).toBe("600");
  });

  it("exposes Run-ID and ACP-Instance on actual responses", async () => {
    const response = await appWith(["https://app.example.com"]).request("/runs", {
      method: "POST",
      headers: { origin: "https://app.example.com" },
    });
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(response.headers.get("access-control-expose-headers")).toBe("Run-ID,ACP-Instance");
  });

  it("gives no allow-origin header to another origin", async () => {
    const response = await appWith(["https://app.example.com"]).request("/runs", {
      method: "POST",
      headers: { origin: "https://evil.example" },
    });
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  it('allows any origin with "*"', async () => {
    const response = await appWith("*").request("/runs", {
      method: "POST",
      headers: { origin: "https://anyone.example" },
    });
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("throws when the app is built with something that is not an origin", () => {
    expect(() => acpCors({ origins: [] })).toThrow(/non-empty list/);
    expect(() => acpCors({ origins: ["https://app.example.com/"] })).toThrow(/is not an origin/);
    expect(() => acpCors({ origins: ["app.example.com"] })).toThrow(/is not an origin/);
    expect(() => acpCors({ origins: "*", maxAgeSeconds: -1 })).toThrow(/maxAgeSeconds/);
  });
});

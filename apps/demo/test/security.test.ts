/**
 * The demo's security settings from the environment, on real processes: API keys and CORS origins
 * from ACP_API_KEYS and ACP_CORS_ORIGINS (the keys never logged), and a refused start on an invalid
 * origin. The app's own security (API keys, CORS, history URLs of other servers, limits, no internal
 * message in any answer) is tested through `app.request()` in packages/core/test/security.test.ts.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startInstance, stopInstances } from "./support/cluster.ts";

describe("demo configuration from the environment", () => {
  it("turns on authentication from ACP_API_KEYS and logs how many keys, never the keys", async () => {
    const instance = await startInstance({
      ACP_API_KEYS: "demo-key-1, demo-key-2",
      ACP_CORS_ORIGINS: "https://app.example.com",
    });
    try {
      expect((await fetch(`${instance.url}/ping`)).status).toBe(200);
      expect((await fetch(`${instance.url}/agents`)).status).toBe(401);
      expect((await fetch(`${instance.url}/agents`, { headers: { authorization: "Bearer demo-key-2" } })).status).toBe(
        200,
      );
      const cors = await fetch(`${instance.url}/agents`, {
        headers: { origin: "https://app.example.com", "x-api-key": "demo-key-1" },
      });
      expect(cors.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    } finally {
      await stopInstances([instance]);
    }
    expect(instance.output()).toContain("auth: on (2 keys)");
    expect(instance.output()).toContain("cors: https://app.example.com");
    expect(instance.output()).not.toContain("demo-key");
  });

  it("refuses to start with an invalid CORS origin, naming the variable", async () => {
    const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: demoDir,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", ACP_CORS_ORIGINS: "app.example.com" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(timer);
    expect(code).not.toBe(0);
    expect(output).toContain("ACP_CORS_ORIGINS");
  });
});

/**
 * The demo starts from environment variables alone: it says which store it uses, and refuses to
 * start, with a readable message and a non-zero exit, when the configuration is contradictory or
 * the backend cannot be reached.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { postgresBackend, redisBackend } from "./ha/backends.ts";
import { freePort, startInstance, stopInstances } from "./support/cluster.ts";

const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Runs the demo until it exits; its exit code and everything it printed. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: demoDir,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("demo start-up", () => {
  it("uses the memory store when nothing is configured, and says so", async () => {
    const instance = await startInstance({});
    await stopInstances([instance]);
    expect(instance.output()).toContain("store: memory");
    expect(instance.output()).toContain(`listening on ${instance.url}`);
  });

  for (const make of [redisBackend, postgresBackend]) {
    it(`uses ${make().name} from its environment variables, with the password redacted in the log`, async () => {
      const backend = make();
      const env = { ...backend.env };
      if (backend.name === "redis") env.REDIS_URL = "redis://default:s3cret@127.0.0.1:6379/0";
      else env.DATABASE_URL = "postgres://postgres:s3cret@127.0.0.1:5432/test";
      const instance = await startInstance(env);
      await stopInstances([instance]);
      await backend.cleanup();
      expect(instance.output()).toContain(`store: ${backend.name}`);
      expect(instance.output()).not.toContain("s3cret");
    });
  }

  it("refuses to start with both Redis and PostgreSQL configured", async () => {
    const { code, output } = await runToExit({ REDIS_HOST: "127.0.0.1", POSTGRES_HOST: "127.0.0.1" });
    expect(code).not.toBe(0);
    expect(output).toContain("Both Redis");
  });

  it("fails fast with a readable message when Redis is unreachable", async () => {
    const port = await freePort();
    const { code, output } = await runToExit({
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: String(port),
      REDIS_PASSWORD: "hunter2",
    });
    expect(code).not.toBe(0);
    expect(output).toContain(`Cannot reach Redis at redis://:***@127.0.0.1:${port}/0`);
    expect(output).not.toContain("hunter2");
  });

  it("fails fast with a readable message when PostgreSQL is unreachable", async () => {
    const port = await freePort();
    const { code, output } = await runToExit({
      POSTGRES_HOST: "127.0.0.1",
      POSTGRES_PORT: String(port),
      POSTGRES_PASSWORD: "hunter2",
    });
    expect(code).not.toBe(0);
    expect(output).toContain(`Cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:${port}/postgres`);
    expect(output).not.toContain("hunter2");
  });
});

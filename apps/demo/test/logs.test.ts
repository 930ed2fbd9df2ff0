/**
 * The demo's log: JSON lines on a stdout that is not a terminal (a pipe here, as under a log
 * collector), readable lines on a terminal, the level from ACP_LOG_LEVEL; a run's lines carry its
 * ids, and no API key ever appears.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createLogger, logLevelFromEnv, prettyLine } from "../src/logger.ts";
import { freePort } from "./support/cluster.ts";

const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A writable that keeps what it is given; `isTTY` as asked. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return Object.assign(stream, { isTTY, text: () => text });
}

async function untilPing(url: string, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/ping`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the demo did not answer /ping:\n${output()}`);
}

describe("the demo's logger", () => {
  it("takes its level from ACP_LOG_LEVEL, info by default, and refuses an unknown one", () => {
    expect(logLevelFromEnv({})).toBe("info");
    expect(logLevelFromEnv({ ACP_LOG_LEVEL: "Debug" })).toBe("debug");
    expect(() => logLevelFromEnv({ ACP_LOG_LEVEL: "loud" })).toThrow(/ACP_LOG_LEVEL must be one of/);
  });

  it("writes JSON lines when its stream is not a terminal, and drops lines under its level", async () => {
    const out = capture(false);
    const logger = createLogger({ ACP_LOG_LEVEL: "warn" }, out);
    logger.info({ run_id: "r1" }, "not shown");
    logger.error({ run_id: "r1", err: new Error("boom") }, "the run failed");
    logger.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "error", run_id: "r1", msg: "the run failed", err: { message: "boom" } });
    expect(line.err.stack).toContain("boom");
    expect(Number.isNaN(Date.parse(line.time))).toBe(false);
  });

  it("writes readable lines, the error's stack under them, on a terminal", () => {
    const out = capture(true);
    const logger = createLogger({}, out);
    logger.error({ run_id: "r1", agent: "failing", err: new Error("boom") }, "the run failed");
    expect(out.text()).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} ERROR the run failed run_id=r1 agent=failing\n {2}Error: boom\n {2} {4}at /,
    );
  });

  it("leaves a line that is not JSON as it is", () => {
    expect(prettyLine("plain")).toBe("plain");
  });
});

describe("the demo's log on a stdout that is not a terminal", () => {
  it("is JSON lines; a failing run's line carries its run_id, session_id, agent and instance_id; no API key appears", async () => {
    const keys = ["log-test-key-9f3a1c", "log-test-key-b27d04"];
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: demoDir,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        ACP_API_KEYS: keys.join(","),
        ACP_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    // "close", not "exit": the child's last lines may still be in its stdout pipe when it exits.
    const exited = once(child, "close");
    let run: { run_id: string; session_id: string; status: string };
    try {
      await untilPing(url, () => stdout + stderr);
      const refused = await fetch(`${url}/agents`, { headers: { "x-api-key": "not-a-key" } });
      expect(refused.status).toBe(401);
      const response = await fetch(`${url}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${keys[0]}` },
        body: JSON.stringify({
          agent_name: "failing",
          mode: "sync",
          input: [{ role: "user", parts: [{ content: "crash", content_type: "text/plain" }] }],
        }),
      });
      run = (await response.json()) as typeof run;
      expect(run.status).toBe("failed");
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
    const lines = stdout.split("\n").filter((line) => line !== "");
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry, line).toMatchObject({
        level: expect.any(String),
        time: expect.any(String),
        msg: expect.any(String),
      });
    }
    // Read once the process has exited and its stdout is closed: every line is in.
    const failed = lines.find((line) => line.includes('"msg":"the run failed"'));
    expect(failed, stdout).toBeDefined();
    expect(JSON.parse(failed!)).toMatchObject({
      level: "error",
      run_id: run.run_id,
      session_id: run.session_id,
      agent: "failing",
      instance_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      err: { message: "internal detail that must not leak" },
    });
    expect(lines.at(-1)).toContain("stopped cleanly");
    for (const key of keys) expect(stdout + stderr).not.toContain(key);
  });
});

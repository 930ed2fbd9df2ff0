/**
 * Private redis-server processes for tests that need a server of their own (a cluster, renamed
 * commands): started on free loopback ports in a temporary directory, stopped and removed after.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const START_TIMEOUT_MS = 10_000;

export interface RedisServer {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** A TCP port that is free on 127.0.0.1 now (and, with `busOffset`, so is port + busOffset). */
export async function freePort(busOffset?: number): Promise<number> {
  for (;;) {
    const port = await listenAndRelease(0);
    if (busOffset === undefined) return port;
    if (port + busOffset > 65_535) continue;
    // A cluster node also listens on port + 10000 for its bus.
    if (
      await listenAndRelease(port + busOffset).then(
        () => true,
        () => false,
      )
    )
      return port;
  }
}

function listenAndRelease(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A temporary directory, removed by the returned function. */
export async function tempDir(name: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `${name}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Starts `redis-server` on `port` with no persistence, in `dir`, with `extraArgs`; resolves once
 * it accepts connections.
 */
export async function startRedisServer(port: number, dir: string, extraArgs: string[] = []): Promise<RedisServer> {
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      ...extraArgs,
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server on port ${port} did not start:\n${output}`)),
      START_TIMEOUT_MS,
    );
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run redis-server (is it installed?): ${error.message}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited with ${code}:\n${output}`));
    });
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
  try {
    await ready;
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => stopProcess(child) };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a program to completion; rejects with its output when it fails. */
export async function run(command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${code}:\n${output}`);
  return output;
}

/**
 * A redis-server of the test's own, on a free loopback port, that the test may kill and start
 * again, which the shared Redis must never suffer. With `persistent`, it keeps an append-only
 * file (fsync on every write) in its temporary directory, so what was written before a SIGKILL is
 * there again after the restart, as on a production server with persistence.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { untilReady } from "./child-ready.ts";
import { freePort } from "./cluster.ts";

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export interface PrivateRedis {
  port: number;
  url: string;
  /** Kills the server with SIGKILL (a crash) and waits until it is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (clients reconnect to it); resolves once it is ready. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory; safe to call in any state. */
  stop(): Promise<void>;
}

/** Starts a private redis-server; `persistent` keeps its data across kill() and restart(). */
export async function startPrivateRedis({ persistent = false }: { persistent?: boolean } = {}): Promise<PrivateRedis> {
  const dir = await mkdtemp(path.join(tmpdir(), "acp-redis-"));
  const port = await freePort();
  const persistence = persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    ...persistence,
    "--daemonize",
    "no",
  ];
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    const started = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child = started;
    try {
      await untilReady(started, "Ready to accept connections", `redis-server on port ${port}`, START_TIMEOUT_MS);
    } catch (error) {
      await terminate(started, "SIGKILL");
      throw error;
    }
  }

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => terminate(child, "SIGKILL"),
    restart: async () => {
      await terminate(child, "SIGKILL");
      await launch();
    },
    stop: async () => {
      await terminate(child, "SIGTERM");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Sends `signal` (SIGKILL if the process lingers) and waits for the exit. */
async function terminate(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

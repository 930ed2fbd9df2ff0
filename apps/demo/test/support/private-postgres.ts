/**
 * A PostgreSQL server of the test's own, on a free loopback port, that the test may kill and start
 * again, which the shared server must never suffer. Its cluster is made by initdb in a temporary
 * directory and runs as the `postgres` OS user (PostgreSQL refuses to run as root), with trust
 * authentication and fsync off: what it committed survives a kill of its processes (not a crash
 * of the machine), so the restarted server has the data back, as a production server would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chown, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { untilReady } from "./child-ready.ts";
import { freePort } from "./cluster.ts";

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export interface PrivatePostgres {
  port: number;
  /** A URL of its `postgres` database as superuser `postgres`. */
  url: string;
  /** Kills the postmaster and every backend with SIGKILL (a crash) and waits until they are gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (clients reconnect to it); resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory; safe to call in any state. */
  stop(): Promise<void>;
}

/** The binaries of the newest PostgreSQL installed the Debian way, unless `PG_BIN` names a directory. */
async function binDir(): Promise<string> {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const versions = await readdir("/usr/lib/postgresql").catch(() => [] as string[]);
  const newest = versions.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined)
    throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql (set PG_BIN to their directory)");
  return `/usr/lib/postgresql/${newest}/bin`;
}

/** The uid and gid of the `postgres` OS user, from /etc/passwd. */
async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const line = (await readFile("/etc/passwd", "utf8")).split("\n").find((entry) => entry.startsWith("postgres:"));
  if (!line) throw new Error("there is no postgres OS user to run a private PostgreSQL server as");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a program as `user` to its end; rejects with its output when it fails. */
async function runAs(user: { uid: number; gid: number }, command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { ...user, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${code}:\n${output}`);
}

/** Makes a cluster with initdb and starts its server. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await binDir();
  const user = await postgresUser();
  const dir = await mkdtemp(path.join(tmpdir(), "acp-postgres-"));
  await chown(dir, user.uid, user.gid);
  const data = path.join(dir, "data");
  const port = await freePort();
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    // Its own process group (detached), so that kill() reaches the backends as well.
    const started = spawn(
      `${bin}/postgres`,
      [
        "-D",
        data,
        "-p",
        String(port),
        "-h",
        "127.0.0.1",
        "-k",
        dir,
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=50",
      ],
      { ...user, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    child = started;
    try {
      await untilReady(
        started,
        "database system is ready to accept connections",
        `PostgreSQL on port ${port}`,
        START_TIMEOUT_MS,
      );
    } catch (error) {
      await killGroup(started);
      throw error;
    }
  }

  try {
    await runAs(user, `${bin}/initdb`, [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ]);
    await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    kill: () => killGroup(child),
    restart: async () => {
      await killGroup(child);
      await launch();
    },
    stop: async () => {
      await killGroup(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** SIGKILL to the server's process group (postmaster and backends); waits for the postmaster. */
async function killGroup(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

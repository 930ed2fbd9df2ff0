/**
 * Starts the measured servers as child processes on loopback and stops them. With a profile
 * directory, each child runs under `node --cpu-prof` and writes its profile there when it exits.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** apps/demo: where tsx and the workspace packages resolve. */
export const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The repository's root. */
export const repoDir = path.resolve(demoDir, "../..");

export interface ServerProcess {
  url: string;
  pid: number;
  /** Everything the process printed so far. */
  output(): string;
  /** SIGTERM (the server drains and exits, writing its profile), SIGKILL after 15 s. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** `acp-server.ts` or `ceiling-server.ts`, in bench/. */
  script: "acp-server.ts" | "ceiling-server.ts";
  /** Added to the environment; the store variables of store-from-env.ts go here. */
  env?: Record<string, string>;
  /** Write a CPU profile into this directory. */
  profileDir?: string;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  return port;
}

/** Variables of the bench's own environment that would pick a store: the children get only ours. */
const STORE_VARIABLES = /^(REDIS_|POSTGRES_|DATABASE_URL$|ACP_)/;

/** Servers not stopped yet, so that an interrupted bench can still stop them. */
const running = new Set<ServerProcess>();

/** Stops every server still running; for an interrupted bench. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((server) => server.stop()));
}

export async function startServer({ script, env = {}, profileDir }: StartOptions): Promise<ServerProcess> {
  const port = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !STORE_VARIABLES.test(name)));
  const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  // `acp-built` makes the packages resolve to their built code (dist), as users run them once
  // installed from npm, rather than to their TypeScript sources compiled on the fly by tsx.
  const child = spawn(
    process.execPath,
    [
      "--expose-gc",
      "--conditions=acp-built",
      ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean),
      ...profile,
      "--import",
      "tsx",
      path.join("bench", script),
    ],
    {
      cwd: demoDir,
      env: { ...inherited, ...env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  const keep = (chunk: Buffer): void => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      running.delete(server);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    })());

  const server: ServerProcess = { url, pid: child.pid!, output: () => log, stop };
  running.add(server);

  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`bench/${script} exited with ${child.exitCode} before it answered /ping:\n${log}`);
    const ready = await fetch(`${url}/ping`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > until) {
      await stop();
      throw new Error(`bench/${script} did not answer ${url}/ping within 30 s:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return server;
}

/**
 * CPU seconds (user + system) that process `pid` has used so far, from /proc (Linux only;
 * `undefined` elsewhere). Read synchronously, so that it marks an exact moment.
 */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds that every process named `command` (`redis-server`, `postgres`: the store servers
 * on this machine) has used so far, from /proc; `undefined` off Linux. Other clients of the same
 * servers count too: a quiet machine is what makes it the bench's share.
 */
export function commandCpuSeconds(command: string): number | undefined {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (name !== command) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: the unit of /proc's CPU times, 100 on every Linux Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Starts real demo instances as child processes (`node --import tsx src/main.ts`: one process,
 * so a signal reaches the server itself, configured by environment
 * variables only, as an operator would) and, optionally, a private nginx in front of them with
 * round robin and no affinity. Everything listens on loopback and is stopped by `stop()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const demoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A free TCP port on loopback (the OS picks it; we release it right away). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

async function waitForPing(url: string, child: ChildProcess, output: () => string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`instance exited with ${child.exitCode}:\n${output()}`);
    try {
      if ((await fetch(`${url}/ping`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`instance at ${url} did not answer /ping within ${ms} ms:\n${output()}`);
}

export interface Instance {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends a signal (SIGTERM for a graceful stop, SIGKILL for a crash). */
  kill(signal: NodeJS.Signals): void;
}

/** Starts one demo instance with `env` (store variables, ACP_LEASE_MS, …) on `port` or a free one. */
export async function startInstance(env: Record<string, string>, port?: number): Promise<Instance> {
  const chosenPort = port ?? (await freePort());
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: demoDir,
    env: { ...process.env, ...env, PORT: String(chosenPort), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${chosenPort}`;
  await waitForPing(url, child, () => log);
  return { url, port: chosenPort, child, output: () => log, exited, kill: (signal) => child.kill(signal) };
}

export interface Balancer {
  url: string;
  stop(): Promise<void>;
}

/** A private nginx on a free port: round robin over `upstreams`, no affinity, SSE unbuffered. */
export async function startNginx(upstreams: string[]): Promise<Balancer> {
  const dir = await mkdtemp(path.join(tmpdir(), "acp-nginx-"));
  await mkdir(path.join(dir, "temp"));
  const port = await freePort();
  const servers = upstreams.map((url) => `    server ${new URL(url).host} max_fails=0;`).join("\n");
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/temp/body;
  proxy_temp_path ${dir}/temp/proxy;
  fastcgi_temp_path ${dir}/temp/fastcgi;
  uwsgi_temp_path ${dir}/temp/uwsgi;
  scgi_temp_path ${dir}/temp/scgi;
  upstream acp {
${servers}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://acp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 300s;
    }
  }
}
`;
  await writeFile(path.join(dir, "nginx.conf"), conf);
  const child = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitForPing(url, child, () => log);
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGQUIT");
        await once(child, "exit");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Stops instances (SIGTERM, then SIGKILL if they linger) and waits for them. */
export async function stopInstances(instances: Instance[]): Promise<void> {
  await Promise.all(
    instances.map(async (instance) => {
      if (instance.child.exitCode !== null || instance.child.signalCode !== null) return;
      instance.kill("SIGTERM");
      const timer = setTimeout(() => instance.kill("SIGKILL"), 10_000);
      await instance.exited;
      clearTimeout(timer);
    }),
  );
}

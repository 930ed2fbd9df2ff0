/**
 * Starts a Node script as a child process that serves HTTP on the port given in `PORT`, the way
 * a user starts their server, and waits until it answers `/ping`.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";

export interface ChildServer {
  url: string;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** Stops the child (SIGTERM, then SIGKILL) and resolves once it exited. Idempotent. */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  cwd: string;
  /** How long the server may take to answer `/ping`. @default 30_000 */
  readyMs?: number;
}

/** A port free right now on loopback: the OS picks it, we release it for the child. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Runs `node <script>` in `cwd` with `PORT` set; rejects with the child's output if it exits or never gets ready. */
export async function startChildServer(script: string, options: ChildServerOptions): Promise<ChildServer> {
  const { cwd, readyMs = 30_000 } = options;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [script], {
    cwd,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? `exit ${code}`));
    child.once("error", (error) => resolve(`spawn error: ${error.message}`));
  });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    })());
  const server: ChildServer = { url, output: () => output, stop };

  let gone: string | undefined;
  void exited.then((how) => (gone = how));
  const until = Date.now() + readyMs;
  for (;;) {
    if (gone !== undefined)
      throw new Error(
        `\`node ${script}\` in ${cwd} exited (${gone}) before answering /ping\n--- output ---\n${output}`,
      );
    const ready = await fetch(`${url}/ping`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) return server;
    if (Date.now() > until) {
      await stop();
      throw new Error(
        `\`node ${script}\` in ${cwd} did not answer ${url}/ping within ${readyMs} ms\n--- output ---\n${output}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * One server of the throughput measurement: its process (and store namespace), the keep-alive
 * load against it, and what its measured slices add up to, server CPU time included.
 */
import { type Namespace, namespace, type StoreName } from "../backends.ts";
import { driverFor, type LoadDriver } from "../generator.ts";
import { type LoadResult, type LoadWindow, type SliceReport, summarize } from "../load.ts";
import { commandCpuSeconds, cpuSeconds, type ServerProcess, startServer } from "../processes.ts";
import type { ScenarioContext } from "./context.ts";

export type ThroughputTarget = "ceiling" | StoreName;

export interface ThroughputResult extends LoadResult {
  target: ThroughputTarget;
  /** CPU time the server process used per run during the measured windows, in ms. */
  serverCpuMsPerRun?: number;
  /** Cores the server process kept busy during the measured windows (1 = one core all the time). */
  serverCores?: number;
  /** CPU time Redis or PostgreSQL (all their processes on this machine) used per run in the windows, in ms. */
  storeCpuMsPerRun?: number;
  /** Runs a second of each measured slice, in round order: how much the machine moved under the totals. */
  sliceRates: number[];
}

/** The process names of the store servers whose CPU counts. */
const STORE_COMMANDS: Partial<Record<ThroughputTarget, string>> = { redis: "redis-server", postgres: "postgres" };

const BODY = JSON.stringify({
  agent_name: "echo",
  input: [{ role: "user", parts: [{ content_type: "text/plain", content: "Hello from the bench" }] }],
  mode: "sync",
});

function checkCompleted(status: number, body: string): void {
  if (status !== 200 || !body.includes('"status":"completed"'))
    throw new Error(`expected 200 and a completed run, got ${status}: ${body.slice(0, 200)}`);
}

export class ThroughputServer {
  readonly #windows: LoadWindow[] = [];
  /** The measured slices alone. */
  readonly #slices: LoadWindow[] = [];
  /** Server CPU seconds over the measured windows; undefined once a reading failed (not Linux). */
  #cpuSeconds: number | undefined = 0;
  /** The same for the store server's processes (Redis, PostgreSQL). */
  #storeCpuSeconds: number | undefined = 0;

  private constructor(
    readonly target: ThroughputTarget,
    readonly server: ServerProcess,
    readonly space: Namespace | undefined,
    readonly load: LoadDriver,
  ) {}

  /**
   * Starts the target's server, writing a CPU profile when the bench profiles. `env` is added to
   * its environment; `name` tells its profile from another of the same target.
   */
  static async start(
    target: ThroughputTarget,
    { generator, profileDir }: ScenarioContext,
    env: Record<string, string> = {},
    name = `throughput-${target}`,
  ): Promise<ThroughputServer> {
    const space = target === "ceiling" ? undefined : namespace(target);
    try {
      const server = await startServer({
        script: target === "ceiling" ? "ceiling-server.ts" : "acp-server.ts",
        env: { ...space?.env, ...env },
        profileDir: profileDir(name),
      });
      // wrk counts statuses, not bodies: one request checked here says the load is what it should be.
      const probe = await fetch(`${server.url}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: BODY,
      });
      checkCompleted(probe.status, await probe.text());
      const load = driverFor(generator, {
        url: server.url,
        path: "/runs",
        body: BODY,
        clients: generator.connections,
        check: checkCompleted,
      });
      return new ThroughputServer(target, server, space, load);
    } catch (error) {
      await space?.cleanup();
      throw error;
    }
  }

  /** Unmeasured load: opens the connections and lets the server's JIT settle. */
  async warmUp(ms: number, report?: SliceReport): Promise<LoadWindow> {
    const window = await this.load.warmUp(ms, report);
    this.#windows.push(window);
    return window;
  }

  /** One measured slice of `ms`, after a short lead-in; added to the server's totals. */
  async measureSlice(ms: number, report?: SliceReport): Promise<LoadWindow> {
    let cpuAtStart: number | undefined;
    let storeCpuAtStart: number | undefined;
    const command = STORE_COMMANDS[this.target];
    const window = await this.load.slice(
      ms,
      (edge) => {
        const now = cpuSeconds(this.server.pid);
        const storeNow = command === undefined ? undefined : commandCpuSeconds(command);
        if (edge === "start") {
          cpuAtStart = now;
          storeCpuAtStart = storeNow;
          return;
        }
        if (this.#cpuSeconds !== undefined)
          this.#cpuSeconds =
            now === undefined || cpuAtStart === undefined ? undefined : this.#cpuSeconds + now - cpuAtStart;
        if (this.#storeCpuSeconds !== undefined)
          this.#storeCpuSeconds =
            storeNow === undefined || storeCpuAtStart === undefined
              ? undefined
              : this.#storeCpuSeconds + storeNow - storeCpuAtStart;
      },
      report,
    );
    this.#windows.push(window);
    this.#slices.push(window);
    return window;
  }

  /** The totals over every slice so far. */
  result(): ThroughputResult {
    const load = summarize(this.#windows);
    const used = this.#cpuSeconds;
    const storeUsed = STORE_COMMANDS[this.target] === undefined ? undefined : this.#storeCpuSeconds;
    return {
      target: this.target,
      ...load,
      sliceRates: this.#slices.map((window) => (window.seconds > 0 ? window.requests / window.seconds : 0)),
      ...(used === undefined || load.requests === 0
        ? {}
        : { serverCpuMsPerRun: (used * 1000) / load.requests, serverCores: used / load.seconds }),
      ...(storeUsed === undefined || load.requests === 0
        ? {}
        : { storeCpuMsPerRun: (storeUsed * 1000) / load.requests }),
    };
  }

  /** Closes the connections, stops the server (which writes its profile) and removes its namespace. */
  async stop(): Promise<void> {
    await this.load.close().catch(() => {});
    await this.server.stop();
    await this.space?.cleanup();
  }
}

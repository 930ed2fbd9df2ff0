/**
 * The load generator of the throughput measurements: `wrk` when it is installed (or asked for),
 * else the JavaScript closed loop of load.ts. Both drive one server the same way: a warm-up, then
 * measured slices, each after a short unmeasured lead-in.
 */
import type { BenchConfig } from "./config.ts";
import { ClosedLoop, type LoadTarget, type LoadWindow, type SliceReport } from "./load.ts";
import { findWrk, WrkLoad, wrkVersion } from "./wrk.ts";

export interface LoadGenerator {
  name: "wrk" | "javascript";
  /** wrk's version, or the Node version the JavaScript generator runs on. */
  version: string;
  /** wrk: its threads (event loops); the JavaScript generator runs in the bench's one thread. */
  threads: number;
  /** Keep-alive connections to the measured server. */
  connections: number;
  /** wrk's path. */
  file?: string;
}

/** "wrk 4.1.0, 1 thread, 64 connections": how the report names the generator. */
export function describeGenerator(generator: LoadGenerator): string {
  const connections = `${generator.connections} keep-alive connections`;
  if (generator.name === "wrk")
    return `wrk ${generator.version} (${generator.threads} thread${generator.threads === 1 ? "" : "s"}, ${connections})`;
  return `the bench's JavaScript generator (undici, Node ${generator.version}, one thread, ${connections})`;
}

/**
 * Picks the generator: BENCH_GENERATOR=wrk requires wrk, =javascript the fallback; by default wrk
 * when it is on PATH, saying so on stderr when it is not.
 */
export function chooseGenerator(config: BenchConfig): LoadGenerator {
  const javascript: LoadGenerator = {
    name: "javascript",
    version: process.version,
    threads: 1,
    connections: config.clients,
  };
  if (config.generator === "javascript") return javascript;
  const file = findWrk();
  if (file === undefined) {
    if (config.generator === "wrk")
      throw new Error("BENCH_GENERATOR=wrk, but wrk is not on PATH (apt-get install wrk)");
    console.error(
      "[bench] wrk is missing (apt-get install wrk): the throughput measurements fall back to the JavaScript generator, " +
        "which shares the CPU with the servers and caps the fastest of them",
    );
    return javascript;
  }
  const version = wrkVersion(file).replace(/^debian\//, "");
  return { name: "wrk", version, threads: config.wrkThreads, connections: config.clients, file };
}

/** One server's load: unmeasured warm-up, then measured slices. */
export interface LoadDriver {
  warmUp(ms: number, report?: SliceReport): Promise<LoadWindow>;
  /**
   * A short unmeasured lead-in, then `ms` of measured load; `onWindow` marks the measured
   * window's edges (the server's CPU is read there).
   */
  slice(ms: number, onWindow: (edge: "start" | "end") => void, report?: SliceReport): Promise<LoadWindow>;
  close(): Promise<void>;
}

/** Unmeasured load at the start of every slice of the JavaScript generator. */
const JS_LEAD_IN_MS = 250;
/** wrk's lead-in: its own run, of its smallest duration. */
const WRK_LEAD_IN_S = 1;

export function driverFor(generator: LoadGenerator, target: LoadTarget): LoadDriver {
  if (generator.name === "wrk") {
    const wrk = new WrkLoad(generator.file!, { ...target, clients: generator.connections }, generator.threads);
    const unmeasured = async (seconds: number, report?: SliceReport): Promise<LoadWindow> => {
      const window = await wrk.run(seconds, undefined, report && ((_, elapsed) => report("lead-in", elapsed)));
      return { ...window, requests: 0, latencies: [], seconds: 0 };
    };
    return {
      warmUp: (ms, report) => unmeasured(ms / 1000, report),
      async slice(ms, onWindow, report) {
        const leadIn = await unmeasured(WRK_LEAD_IN_S, report);
        const window = await wrk.run(ms / 1000, onWindow, report);
        return {
          ...window,
          completed: window.completed + leadIn.completed,
          errors: window.errors + leadIn.errors,
          ...(window.firstError === undefined && leadIn.firstError !== undefined
            ? { firstError: leadIn.firstError }
            : {}),
        };
      },
      close: () => wrk.close(),
    };
  }
  const loop = new ClosedLoop({ ...target, clients: generator.connections });
  return {
    warmUp: (ms, report) => loop.run({ leadInMs: ms, measureMs: 0, onProgress: report }),
    slice: (ms, onWindow, report) => loop.run({ leadInMs: JS_LEAD_IN_MS, measureMs: ms, onWindow, onProgress: report }),
    close: () => loop.close(),
  };
}

/**
 * A closed-loop load generator: `clients` keep-alive connections, each sending its next request
 * as soon as the previous answer is read. Requests finishing during the warm-up are not counted;
 * then completions are counted and timed for the measured window.
 *
 * undici's Pool is used instead of fetch so that exactly `clients` connections carry the load
 * (fetch's global dispatcher decides that itself) and bodies are read without WHATWG stream cost.
 */
import { Pool } from "undici";
import { percentile } from "./stats.ts";

export interface LoadOptions {
  url: string;
  path: string;
  /** JSON body sent with every request (POST). */
  body: string;
  clients: number;
  warmupMs: number;
  measureMs: number;
  /** Throws when an answer is not what a successful request returns. */
  check(status: number, body: string): void;
  /** Called when the measured window opens and when it closes. */
  onWindow?(edge: "start" | "end"): void;
  /** Called about once a second with what was measured so far. */
  onProgress?(phase: "warm-up" | "measuring", elapsedMs: number, completed: number): void;
}

export interface LoadResult {
  /** Requests completed in the measured window. */
  requests: number;
  /** Requests completed in all, warm-up included: what the server did over its life. */
  completedInAll: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

export async function closedLoop(options: LoadOptions): Promise<LoadResult> {
  const { url, path, body, clients, warmupMs, measureMs, check, onWindow, onProgress } = options;
  const pool = new Pool(url, { connections: clients, pipelining: 1, keepAliveTimeout: 60_000 });
  const started = performance.now();
  const measureFrom = started + warmupMs;
  const measureUntil = measureFrom + measureMs;
  const latencies: number[] = [];
  let errors = 0;
  let completedInAll = 0;
  let firstError: string | undefined;

  const opens = setTimeout(() => onWindow?.("start"), warmupMs);
  const closes = setTimeout(() => onWindow?.("end"), warmupMs + measureMs);
  const ticker = setInterval(() => {
    const now = performance.now();
    if (now < measureFrom) onProgress?.("warm-up", now - started, 0);
    else onProgress?.("measuring", now - measureFrom, latencies.length);
  }, 1000);

  const client = async (): Promise<void> => {
    while (performance.now() < measureUntil) {
      const sent = performance.now();
      try {
        const response = await pool.request({ path, method: "POST", headers: { "content-type": "application/json" }, body });
        check(response.statusCode, await response.body.text());
        const done = performance.now();
        completedInAll++;
        if (done >= measureFrom && done < measureUntil) latencies.push(done - sent);
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
        // An error loop would spin: back off a little.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    clearInterval(ticker);
    clearTimeout(opens);
    clearTimeout(closes);
    await pool.close();
  }
  const seconds = measureMs / 1000;
  return {
    requests: latencies.length,
    completedInAll,
    errors,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/**
 * A closed-loop load generator: `clients` keep-alive connections to one server, each sending its
 * next request as soon as the previous answer is read. One `run` drives the loop for a lead-in
 * (not counted), then counts and times the completions of a measured window, and stops; the
 * connections stay open for the next run, so that a server can be measured in several slices.
 *
 * undici's Pool is used instead of fetch so that exactly `clients` connections carry the load
 * (fetch's global dispatcher decides that itself) and bodies are read without WHATWG stream cost.
 */
import { Pool } from "undici";
import { KEEP_ALIVE_MS } from "./keep-alive.ts";
import { weightedPercentile } from "./stats.ts";

export interface LoadTarget {
  url: string;
  path: string;
  /** JSON body sent with every request (POST). */
  body: string;
  clients: number;
  /** Throws when an answer is not what a successful request returns. */
  check(status: number, body: string): void;
}

export interface RunOptions {
  /** Unmeasured load before the window opens: a warm-up, or the settling of a slice. */
  leadInMs: number;
  /** Length of the measured window; 0 for none. */
  measureMs: number;
  /** Called the moment the measured window opens and the moment it closes. */
  onWindow?(edge: "start" | "end"): void;
  /** Called about twice a second with what was measured so far. */
  onProgress?: SliceReport;
}

/** Called about twice a second with what was measured so far (`completed` when the generator knows it). */
export type SliceReport = (phase: "lead-in" | "measuring", elapsedMs: number, completed?: number) => void;

/** What one run saw. */
export interface LoadWindow {
  /** Successful requests completed in the measured window. */
  requests: number;
  /**
   * Latencies of the measured window, in ms: every request's (JavaScript generator), or its
   * 1,000 quantiles (wrk), each standing for `latencyWeight` requests.
   */
  latencies: number[];
  latencyWeight: number;
  /** Requests completed in all, lead-in included. */
  completed: number;
  /** Failed requests, lead-in included. */
  errors: number;
  /** Length of the measured window as timed, in s. */
  seconds: number;
  firstError?: string;
}

/** What one or more runs against a server add up to. */
export interface LoadResult {
  /** Requests completed in the measured windows. */
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

export class ClosedLoop {
  readonly #pool: Pool;

  constructor(readonly target: LoadTarget) {
    this.#pool = new Pool(target.url, {
      connections: target.clients,
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
    });
  }

  async run({ leadInMs, measureMs, onWindow, onProgress }: RunOptions): Promise<LoadWindow> {
    const { path, body, clients, check } = this.target;
    const started = performance.now();
    const result: LoadWindow = { requests: 0, latencies: [], latencyWeight: 1, completed: 0, errors: 0, seconds: 0 };
    // Completions count while the window is open; the edges are set by timers and read the clock
    // right beside onWindow, so that what is counted and what onWindow measures cover the same time.
    let measuring = false;
    let stopped = false;
    let openedAt = 0;
    let closes: NodeJS.Timeout | undefined;
    const close = (): void => {
      measuring = false;
      stopped = true;
      if (measureMs === 0) return;
      result.seconds = (performance.now() - openedAt) / 1000;
      onWindow?.("end");
    };
    const opens = setTimeout(() => {
      if (measureMs === 0) return close();
      onWindow?.("start");
      openedAt = performance.now();
      measuring = true;
      closes = setTimeout(close, measureMs);
    }, leadInMs);
    const ticker = setInterval(() => {
      if (measuring) onProgress?.("measuring", performance.now() - openedAt, result.latencies.length);
      else if (!stopped) onProgress?.("lead-in", performance.now() - started, 0);
    }, 500);

    const client = async (): Promise<void> => {
      while (!stopped) {
        const sent = performance.now();
        try {
          const response = await this.#pool.request({
            path,
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
          });
          check(response.statusCode, await response.body.text());
          result.completed++;
          if (measuring) {
            result.requests++;
            result.latencies.push(performance.now() - sent);
          }
        } catch (error) {
          result.errors++;
          result.firstError ??= (error as Error).message;
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
      stopped = true;
    }
    return result;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** Adds up the runs against one server: counts and times summed, percentiles over every latency (weighted). */
export function summarize(windows: readonly LoadWindow[]): LoadResult {
  const samples = windows.flatMap((window) =>
    window.latencies.map((value) => ({ value, weight: window.latencyWeight })),
  );
  const requests = windows.reduce((sum, window) => sum + window.requests, 0);
  const seconds = windows.reduce((sum, window) => sum + window.seconds, 0);
  const firstError = windows.find((window) => window.firstError !== undefined)?.firstError;
  return {
    requests,
    completedInAll: windows.reduce((sum, window) => sum + window.completed, 0),
    errors: windows.reduce((sum, window) => sum + window.errors, 0),
    seconds,
    perSecond: seconds > 0 ? requests / seconds : 0,
    p50Ms: weightedPercentile(samples, 50),
    p99Ms: weightedPercentile(samples, 99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

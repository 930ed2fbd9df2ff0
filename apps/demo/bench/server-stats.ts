/** What a bench server (acp-server.ts) reports about itself on its `/__bench/*` endpoints. */
import type { ServerProcess } from "./processes.ts";

export interface MemoryReport {
  /** `process.memoryUsage()` after two full garbage collections. */
  memory: NodeJS.MemoryUsage;
  /** Store calls so far per method (with BENCH_COUNT_STORE_CALLS=1). */
  storeCalls: Record<string, number>;
  /** Whether the server could collect garbage (runs with --expose-gc). */
  gc: boolean;
}

export interface CallTiming {
  p50Ms: number;
  p99Ms: number;
  calls: number;
}

async function get<T>(server: ServerProcess, path: string): Promise<T> {
  const response = await fetch(`${server.url}${path}`);
  if (!response.ok) throw new Error(`${path}: status ${response.status}`);
  return (await response.json()) as T;
}

export function memoryReport(server: ServerProcess): Promise<MemoryReport> {
  return get(server, "/__bench/memory");
}

/** How long store calls took per method since the last reset; `reset` starts afresh afterwards. */
export function storeTimings(server: ServerProcess, reset = false): Promise<Record<string, CallTiming>> {
  return get(server, `/__bench/store-timings${reset ? "?reset=1" : ""}`);
}

/** Store calls counted so far per method (with BENCH_COUNT_STORE_CALLS=1), without a garbage collection. */
export function storeCalls(server: ServerProcess): Promise<Record<string, number>> {
  return get(server, "/__bench/store-calls");
}

/**
 * How the cost of a streamed event grows with the length of the run: one stream run of an agent
 * yielding N text parts, timed from the request to the end of the SSE body, for each N. Small N
 * are repeated (the median counts) so that every N times about the same number of events. At the
 * largest N it also measures the bytes the store keeps per event.
 */
import { Pool } from "undici";
import { type Namespace, namespace, PostgresProbe, RedisProbe, type StoreName } from "../backends.ts";
import { startServer } from "../processes.ts";
import { eventType, readSse } from "../sse.ts";
import { median } from "../stats.ts";
import type { ScenarioContext } from "./context.ts";

export interface StreamSizeResult {
  n: number;
  runs: number;
  /** Median over the runs of (request to end of stream) / N. */
  usPerEvent: number;
}

export interface StoreBytes {
  /** Events in the log of the measured run (N parts plus the run's and message's own events). */
  events: number;
  /** Bytes the run's event log takes in the store, per event. */
  bytesPerEvent: number;
  /** Bytes of the stored event values themselves, per event: the rest is the store's overhead. */
  valueBytesPerEvent: number;
  /** How it was measured. */
  method: string;
}

export interface StreamGrowthResult {
  store: StoreName;
  sizes: StreamSizeResult[];
  /** µs/event at the largest N over µs/event at the smallest. */
  ratio: number;
  bytes?: StoreBytes;
}

const bodyFor = (n: number): string =>
  JSON.stringify({ agent_name: "parts", input: [{ role: "user", parts: [{ content: `n=${n}` }] }], mode: "stream" });

/** One stream run: its run id and how long it took, in ms. Throws unless it ended completed with N parts. */
async function streamRun(pool: Pool, n: number): Promise<{ runId: string; ms: number }> {
  const started = performance.now();
  const response = await pool.request({
    path: "/runs",
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: bodyFor(n),
  });
  if (response.statusCode !== 200)
    throw new Error(
      `stream run of ${n} parts: status ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`,
    );
  let partEvents = 0;
  let last: string | undefined;
  await readSse(response.body, (data) => {
    last = eventType(data);
    if (last === "message.part") partEvents++;
  });
  const ms = performance.now() - started;
  if (last !== "run.completed" || partEvents !== n)
    throw new Error(`stream run of ${n} parts ended with ${last} after ${partEvents} parts`);
  return { runId: String(response.headers["run-id"]), ms };
}

async function measureBytes(space: Namespace, pool: Pool, n: number): Promise<StoreBytes | undefined> {
  if (space.store === "redis") {
    const probe = await new RedisProbe(space.prefix!).open();
    try {
      const { runId } = await streamRun(pool, n);
      const log = await probe.eventLog(runId);
      return {
        events: log.events,
        bytesPerEvent: log.bytes / log.events,
        valueBytesPerEvent: log.valueBytes / log.events,
        method: "MEMORY USAGE of the run's event list (SAMPLES 0) / its length; values: the JSON strings",
      };
    } finally {
      await probe.close();
    }
  }
  if (space.store === "postgres") {
    const probe = new PostgresProbe(space.table!);
    try {
      const before = await probe.eventsTableBytes();
      const { runId } = await streamRun(pool, n);
      const after = await probe.eventsTableBytes();
      const log = await probe.eventLog(runId);
      return {
        events: log.events,
        bytesPerEvent: (after - before) / log.events,
        valueBytesPerEvent: log.valueBytes / log.events,
        method: "pg_total_relation_size(events table) delta / the run's rows; values: pg_column_size(event)",
      };
    } finally {
      await probe.close();
    }
  }
  return undefined;
}

export async function measureStreamGrowth(
  store: StoreName,
  { config, progress, profileDir }: ScenarioContext,
): Promise<StreamGrowthResult> {
  const space = namespace(store);
  const server = await startServer({
    script: "acp-server.ts",
    env: space.env,
    profileDir: profileDir(`streams-${store}`),
  });
  const pool = new Pool(server.url, { connections: 1 });
  try {
    const sizes: StreamSizeResult[] = [];
    for (const n of config.streamSizes) {
      const runs = Math.max(5, Math.ceil(config.streamEvents / n));
      progress.update(`N=${n}: warm-up`);
      await streamRun(pool, n);
      const perEvent: number[] = [];
      for (let index = 0; index < runs; index++) {
        const { ms } = await streamRun(pool, n);
        perEvent.push((ms * 1000) / n);
        progress.update(`N=${n}: run ${index + 1}/${runs}, ${median(perEvent).toFixed(1)} µs/event`);
      }
      sizes.push({ n, runs, usPerEvent: median(perEvent) });
    }
    const largest = config.streamSizes.at(-1)!;
    progress.update(`bytes per event at N=${largest}`);
    const bytes = await measureBytes(space, pool, largest);
    return { store, sizes, ratio: sizes.at(-1)!.usPerEvent / sizes[0]!.usPerEvent, ...(bytes ? { bytes } : {}) };
  } finally {
    await pool.close();
    await server.stop();
    await space.cleanup();
  }
}

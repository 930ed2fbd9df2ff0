/**
 * Many idle followers on one instance: `followers` runs of the approval agent wait for a resume,
 * and one SSE stream follows each. Measures the server's memory per open stream (after garbage
 * collection, before and after the streams open), the store connections the process holds, and
 * the store calls the idle streams cause per second. The floor is the same number of idle
 * `streamSSE` streams on a bare Hono endpoint (ceiling-server.ts), which holds nothing else.
 */
import { Pool } from "undici";
import { connectionsTo, namespace, POSTGRES_POOL, PostgresProbe, type StoreName } from "../backends.ts";
import { type ServerProcess, startServer } from "../processes.ts";
import { memoryReport } from "../server-stats.ts";
import { eventType, readSse } from "../sse.ts";
import { type ScenarioContext, sleep, timeout } from "./context.ts";

export type FollowersTarget = "ceiling" | StoreName;

export interface FollowersResult {
  target: FollowersTarget;
  streams: number;
  /** RSS growth per open stream, in KB (1024 bytes). */
  rssKbPerStream: number;
  /** V8 heap growth per open stream, in KB. */
  heapKbPerStream: number;
  /** Growth of memory outside the V8 heap (`external`, which includes ArrayBuffers) per open stream, in KB. */
  externalKbPerStream: number;
  /** TCP connections from the server process to the store while the streams are open. */
  storeConnections?: number;
  /** PostgreSQL only: connections under the server's application_name, and the pool size. */
  pgConnections?: number;
  pool?: number;
  /** Store calls per second, per method, while the streams sat idle. */
  idleStoreCallsPerSecond: Record<string, number>;
}

const STORE_PORTS: Partial<Record<StoreName, number>> = { redis: 6379, postgres: 5432 };
const KB = 1024;

/** Creates `count` runs of the approval agent, which then wait for a resume; their ids. */
async function awaitingRuns(
  server: ServerProcess,
  count: number,
  onProgress: (created: number) => void,
): Promise<string[]> {
  const creators = new Pool(server.url, { connections: 16 });
  const runIds: string[] = [];
  const body = JSON.stringify({
    agent_name: "approval",
    input: [{ role: "user", parts: [{ content: "the bench" }] }],
    mode: "sync",
  });
  const create = async (): Promise<void> => {
    while (runIds.length < count) {
      const response = await creators.request({
        path: "/runs",
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const run = (await response.body.json()) as { run_id: string; status: string };
      if (run.status !== "awaiting")
        throw new Error(`approval run: expected awaiting, got ${JSON.stringify(run).slice(0, 200)}`);
      runIds.push(run.run_id);
      if (runIds.length % 100 === 0) onProgress(runIds.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: 16 }, create));
  } finally {
    await creators.close();
  }
  return runIds.slice(0, count);
}

export async function measureFollowers(
  target: FollowersTarget,
  { config, progress, profileDir }: ScenarioContext,
): Promise<FollowersResult> {
  const count = config.followers;
  const store = target === "ceiling" ? undefined : target;
  const space = store && namespace(store);
  const server = await startServer({
    script: store ? "acp-server.ts" : "ceiling-server.ts",
    env: space ? { ...space.env, BENCH_COUNT_STORE_CALLS: "1" } : {},
    profileDir: profileDir(`followers-${target}`),
  });
  const followers = new Pool(server.url, { connections: count + 16, headersTimeout: 0, bodyTimeout: 0 });
  try {
    const paths = store
      ? (
          await awaitingRuns(server, count, (created) => progress.update(`${created}/${count} awaiting runs created`))
        ).map((runId) => `/runs/${runId}/events`)
      : Array.from({ length: count }, () => "/sse");
    await sleep(1000);
    const before = await memoryReport(server);
    if (!before.gc) throw new Error("the bench server runs without --expose-gc");

    let attached = 0;
    let allAttached!: () => void;
    const ready = new Promise<void>((resolve) => (allAttached = resolve));
    const streams = paths.map(async (path) => {
      const response = await followers.request({ path, method: "GET", headers: { accept: "text/event-stream" } });
      let counted = false;
      await readSse(response.body, (data) => {
        if (!counted && eventType(data) === "run.awaiting") {
          counted = true;
          if (++attached === count) allAttached();
          if (attached % 100 === 0) progress.update(`${attached}/${count} streams attached`);
        }
      }).catch(() => {});
    });
    await Promise.race([
      ready,
      timeout(120_000, "the streams did not all get their events within 120 s").catch((error: Error) => {
        throw new Error(`${error.message} (${attached} of ${count} did)`);
      }),
    ]);

    await sleep(2000);
    progress.update(`${count} streams open, measuring ${config.seconds} s idle`);
    const open = await memoryReport(server);
    await sleep(config.seconds * 1000);
    const idle = await memoryReport(server);
    const storeConnections =
      store && STORE_PORTS[store] !== undefined ? await connectionsTo(server.pid, STORE_PORTS[store]!) : undefined;
    let pgConnections: number | undefined;
    if (space?.store === "postgres") {
      const probe = new PostgresProbe(space.table!);
      pgConnections = await probe.connections(space.applicationName!).finally(() => probe.close());
    }
    const idleStoreCallsPerSecond = Object.fromEntries(
      Object.entries(idle.storeCalls)
        .map(([method, calls]) => [method, (calls - (open.storeCalls[method] ?? 0)) / config.seconds] as const)
        .filter(([, perSecond]) => perSecond > 0),
    );
    await followers.destroy();
    await Promise.all(streams);
    const delta = (field: keyof NodeJS.MemoryUsage): number => (open.memory[field] - before.memory[field]) / count / KB;
    return {
      target,
      streams: count,
      rssKbPerStream: delta("rss"),
      heapKbPerStream: delta("heapUsed"),
      externalKbPerStream: delta("external"),
      ...(storeConnections === undefined ? {} : { storeConnections }),
      ...(pgConnections === undefined ? {} : { pgConnections, pool: POSTGRES_POOL }),
      idleStoreCallsPerSecond,
    };
  } finally {
    await followers.destroy().catch(() => {});
    await server.stop();
    await space?.cleanup();
  }
}

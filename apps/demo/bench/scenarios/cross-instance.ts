/**
 * Latency across instances: a run on instance A yields timestamped parts at a steady rate (about
 * one a millisecond); a stream opened on instance B follows it. For every part, arrival at B's
 * client minus the time A's agent yielded it. Both instances share one store namespace.
 */
import { request } from "undici";
import { namespace, type StoreName } from "../backends.ts";
import { wallClockMs } from "../bench-agents.ts";
import { startServer } from "../processes.ts";
import { type CallTiming, storeTimings } from "../server-stats.ts";
import { eventType, readSse } from "../sse.ts";
import { percentile } from "../stats.ts";
import type { ScenarioContext } from "./context.ts";

export interface CrossInstanceResult {
  store: StoreName;
  /** Parts timed: written after B's stream was attached. */
  events: number;
  /** Parts written before B's stream was attached (replayed, not timed). */
  skipped: number;
  /** Parts per second the agent achieved. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How long A's appendEvents calls took: the writer's share of the latency. */
  writerAppend?: CallTiming;
  /** How long B's readEvents calls took: the follower's share of it. */
  followerRead?: CallTiming;
}

/** Time the follower gets to attach before the agent starts yielding. */
const ATTACH_MS = 1000;

export async function measureCrossInstance(
  store: StoreName,
  { config, progress, profileDir }: ScenarioContext,
): Promise<CrossInstanceResult> {
  const space = namespace(store);
  const env = { ...space.env, BENCH_COUNT_STORE_CALLS: "1" };
  const a = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`cross-${store}-a`) });
  const b = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`cross-${store}-b`) }).catch(
    async (error: unknown) => {
      await a.stop();
      throw error;
    },
  );
  try {
    const created = await request(`${a.url}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        agent_name: "ticker",
        input: [{ role: "user", parts: [{ content: `count=${config.crossEvents} delay=${ATTACH_MS}` }] }],
        mode: "async",
      }),
    });
    const run = (await created.body.json()) as { run_id: string };
    if (created.statusCode !== 202) throw new Error(`async run on A: status ${created.statusCode}`);

    await Promise.all([storeTimings(a, true), storeTimings(b, true)]);
    const stream = await request(`${b.url}/runs/${run.run_id}/events`, { headers: { accept: "text/event-stream" } });
    if (stream.statusCode !== 200)
      throw new Error(`stream on B: status ${stream.statusCode}: ${await stream.body.text()}`);
    let attachedAt: number | undefined;
    const latencies: number[] = [];
    let skipped = 0;
    let first = Number.NaN;
    let last = Number.NaN;
    let lastType: string | undefined;
    await readSse(stream.body, (data) => {
      const arrived = wallClockMs();
      attachedAt ??= arrived;
      lastType = eventType(data);
      if (lastType !== "message.part") return;
      const written = Number((JSON.parse(data) as { part: { content: string } }).part.content);
      if (Number.isNaN(first)) first = written;
      last = written;
      if (written < attachedAt) skipped++;
      else latencies.push(arrived - written);
      if (latencies.length % 500 === 0)
        progress.update(
          `${latencies.length}/${config.crossEvents} events, p99 so far ${percentile(latencies, 99).toFixed(2)} ms`,
        );
    });
    if (lastType !== "run.completed") throw new Error(`B's stream ended with ${lastType}`);
    const parts = latencies.length + skipped;
    const [writer, follower] = await Promise.all([storeTimings(a), storeTimings(b)]);
    return {
      store,
      events: latencies.length,
      skipped,
      rate: parts > 1 ? ((parts - 1) * 1000) / (last - first) : Number.NaN,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: percentile(latencies, 100),
      ...(writer.appendEvents ? { writerAppend: writer.appendEvents } : {}),
      ...(follower.readEvents ? { followerRead: follower.readEvents } : {}),
    };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await space.cleanup();
  }
}

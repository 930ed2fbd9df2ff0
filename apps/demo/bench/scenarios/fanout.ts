/**
 * Fan-out across instances: one run on instance A, followed by many SSE clients on instance B.
 * The run (the `broadcast` agent) awaits first, so that every follower is attached before it
 * moves; once resumed on A it yields a timestamped part every 50 ms. For every part and every
 * follower: its arrival at the follower minus the time A's agent yielded it. Beside it, the store
 * calls B makes per second while the run ticks, with one follower and with `followers`: a server
 * that shares one subscription and one read per run among its followers makes about as many
 * with a thousand as with one.
 *
 * The followers are plain `node:http` responses read with as little work as possible (the time of
 * arrival is taken first thing when a chunk comes in), so that the bench's own event loop, which
 * serves all of them, adds little to the delay it measures.
 */
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { namespace, type StoreName } from "../backends.ts";
import { wallClockMs } from "../bench-agents.ts";
import { cpuSeconds, type ServerProcess, startServer } from "../processes.ts";
import { storeCalls } from "../server-stats.ts";
import { eventType } from "../sse.ts";
import { percentile } from "../stats.ts";
import { type ScenarioContext, sleep, timeout } from "./context.ts";

export interface FanoutPhase {
  followers: number;
  /** Parts timed at the followers (expected: followers × events). */
  deliveries: number;
  /** Parts a follower never got. */
  missing: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Seconds it took to attach every follower. */
  attachSeconds: number;
  /**
   * p99 of the bench's own event-loop delay while the parts arrived, in ms: how late the bench
   * could have been in timing an arrival (a bound on what the measuring side adds).
   */
  benchLoopDelayP99Ms: number;
  /** Cores B's process kept busy from the resume to the end (1 = one core all the time). */
  serverCores?: number;
  /** Cores the bench's own process (the followers) kept busy meanwhile. */
  benchCores: number;
  /** B's store calls per second from the resume to the last follower's `run.completed`. */
  storeCallsPerSecond: number;
  /** The same, per method. */
  storeCallsByMethod: Record<string, number>;
}

export interface FanoutResult {
  store: Exclude<StoreName, "memory">;
  /** Parts the run yields, one every `intervalMs`. */
  events: number;
  intervalMs: number;
  one: FanoutPhase;
  many: FanoutPhase;
}

const INTERVAL_MS = 50;
/** Followers attaching at once (more would overflow B's listen backlog and wait for SYN retries). */
const ATTACH_CONCURRENCY = 100;

/** Every delay measured in a phase, over all its followers. */
interface Tally {
  delays: number[];
}

interface Follower {
  /** Resolves once the follower has the run's `run.awaiting` (it is attached and caught up). */
  attached: Promise<void>;
  /** Resolves when the stream ends; `completed` tells whether it ended with `run.completed`. */
  finished: Promise<void>;
  completed(): boolean;
  parts(): number;
  close(): void;
}

function follow(server: ServerProcess, runId: string, tally: Tally): Follower {
  let attachedAt: number | undefined;
  let completed = false;
  let parts = 0;
  let markAttached!: () => void;
  let fail!: (error: Error) => void;
  const attached = new Promise<void>((resolve, reject) => {
    markAttached = resolve;
    fail = reject;
  });
  // Awaited by the phase; a failure after another follower's already failed the phase stays quiet.
  attached.catch(() => {});
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const onFrame = (frame: string, arrived: number): void => {
    let data: string | undefined;
    for (const line of frame.split("\n")) {
      if (!line.startsWith("data:")) continue;
      const value = line.slice(line.charAt(5) === " " ? 6 : 5);
      data = data === undefined ? value : `${data}\n${value}`;
    }
    if (data === undefined) return;
    const type = eventType(data);
    if (type === "message.part") {
      const written = Number(/"content":"([\d.]+)"/.exec(data)?.[1]);
      if (Number.isNaN(written)) return;
      parts++;
      if (attachedAt !== undefined && written >= attachedAt) tally.delays.push(arrived - written);
    } else if (type === "run.awaiting" && attachedAt === undefined) {
      attachedAt = arrived;
      markAttached();
    } else if (type === "run.completed") {
      completed = true;
    }
  };
  const request = http.get(
    `${server.url}/runs/${runId}/events`,
    { agent: false, headers: { accept: "text/event-stream" } },
    (response) => {
      if (response.statusCode !== 200) {
        fail(new Error(`follower: status ${response.statusCode}`));
        response.resume();
        return;
      }
      response.setEncoding("utf8");
      let pending = "";
      response.on("data", (chunk: string) => {
        const arrived = wallClockMs();
        pending += chunk;
        for (let end = pending.indexOf("\n\n"); end !== -1; end = pending.indexOf("\n\n")) {
          onFrame(pending.slice(0, end), arrived);
          pending = pending.slice(end + 2);
        }
      });
      response.once("end", finish);
      response.once("close", finish);
    },
  );
  request.once("error", (error) => {
    fail(error);
    finish();
  });
  return {
    attached,
    finished,
    completed: () => completed,
    parts: () => parts,
    close: () => request.destroy(),
  };
}

async function post(url: string, body: unknown): Promise<{ run_id: string; status: string }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const run = (await response.json()) as { run_id: string; status: string };
  if (!response.ok) throw new Error(`POST ${url}: status ${response.status}: ${JSON.stringify(run).slice(0, 300)}`);
  return run;
}

const total = (counts: Record<string, number>): number => Object.values(counts).reduce((sum, n) => sum + n, 0);

async function phase(
  a: ServerProcess,
  b: ServerProcess,
  count: number,
  events: number,
  report: (detail: string) => void,
): Promise<FanoutPhase> {
  const run = await post(`${a.url}/runs`, {
    agent_name: "broadcast",
    input: [{ role: "user", parts: [{ content: `count=${events} interval=${INTERVAL_MS}` }] }],
    mode: "sync",
  });
  if (run.status !== "awaiting") throw new Error(`broadcast run: expected awaiting, got ${run.status}`);
  const tally: Tally = { delays: [] };
  const followers: Follower[] = [];
  try {
    const attachStarted = performance.now();
    for (let index = 0; index < count; index += ATTACH_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(ATTACH_CONCURRENCY, count - index) }, () =>
        follow(b, run.run_id, tally),
      );
      followers.push(...batch);
      await Promise.all(batch.map((follower) => follower.attached));
      report(`${followers.length}/${count} followers attached on B`);
    }
    const attachSeconds = (performance.now() - attachStarted) / 1000;
    await sleep(1000);

    const before = await storeCalls(b);
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const serverCpuAtStart = cpuSeconds(b.pid);
    const benchCpuAtStart = process.cpuUsage();
    const started = performance.now();
    report(`${count} followers: resumed on A, ${events} parts at ${1000 / INTERVAL_MS}/s`);
    await post(`${a.url}/runs/${run.run_id}`, {
      await_resume: { type: "message", message: { role: "user", parts: [{ content: "go" }] } },
      mode: "async",
    });
    const limitMs = events * INTERVAL_MS + 60_000;
    const deadline = timeout(limitMs, `the followers did not all see the run end within ${limitMs} ms`);
    await Promise.race([Promise.all(followers.map((follower) => follower.finished)), deadline]);
    const seconds = (performance.now() - started) / 1000;
    loopDelay.disable();
    const serverCpu = cpuSeconds(b.pid);
    const benchCpu = process.cpuUsage(benchCpuAtStart);
    const after = await storeCalls(b);
    const incomplete = followers.filter((follower) => !follower.completed()).length;
    if (incomplete > 0) throw new Error(`${incomplete} of ${count} followers' streams ended before run.completed`);
    const byMethod = Object.fromEntries(
      Object.entries(after)
        .map(([method, calls]) => [method, (calls - (before[method] ?? 0)) / seconds] as const)
        .filter(([, perSecond]) => perSecond > 0),
    );
    return {
      followers: count,
      deliveries: tally.delays.length,
      missing: followers.reduce((sum, follower) => sum + Math.max(0, events - follower.parts()), 0),
      p50Ms: percentile(tally.delays, 50),
      p99Ms: percentile(tally.delays, 99),
      maxMs: percentile(tally.delays, 100),
      attachSeconds,
      benchLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      ...(serverCpu === undefined || serverCpuAtStart === undefined
        ? {}
        : { serverCores: (serverCpu - serverCpuAtStart) / seconds }),
      benchCores: (benchCpu.user + benchCpu.system) / 1e6 / seconds,
      storeCallsPerSecond: (total(after) - total(before)) / seconds,
      storeCallsByMethod: byMethod,
    };
  } finally {
    for (const follower of followers) follower.close();
  }
}

export async function measureFanout(
  store: Exclude<StoreName, "memory">,
  { config, progress, profileDir }: ScenarioContext,
): Promise<FanoutResult> {
  const space = namespace(store);
  const env = { ...space.env, BENCH_COUNT_STORE_CALLS: "1" };
  const a = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`fanout-${store}-a`) });
  let b: ServerProcess | undefined;
  try {
    b = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`fanout-${store}-b`) });
    const report = (detail: string): void => progress.update(detail);
    const one = await phase(a, b, 1, config.fanoutEvents, report);
    const many = await phase(a, b, config.followers, config.fanoutEvents, report);
    return { store, events: config.fanoutEvents, intervalMs: INTERVAL_MS, one, many };
  } finally {
    await Promise.all([a.stop(), b?.stop()]);
    await space.cleanup();
  }
}

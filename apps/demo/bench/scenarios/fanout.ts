/**
 * Fan-out across instances: one run on instance A, followed by many SSE clients on instance B.
 * The run (the `broadcast` agent) awaits first, so that every follower is attached before it
 * moves; once resumed on A it yields a timestamped part every 50 ms, and A's bench server adds
 * the time its `appendEvents` (or `updateRun`) call wrote the part. For every part and every
 * follower: its arrival at the follower minus that write time. Beside it, the store calls B makes
 * per second while the run ticks, with one follower and with `followers`: a server that shares
 * one subscription and one read per run among its followers makes about as many with a thousand
 * as with one.
 *
 * The thousand followers get a first, shorter run before the measured one (`fanoutWarmupEvents`
 * parts), reported apart: in it B's delivery code runs before V8 has optimised it, and its first
 * parts took about twice as long to reach every stream as the parts of a server that has been
 * delivering for a while. A server in production is warm, as are the throughput servers, which
 * are measured after their warm-up.
 *
 * The followers run in a few child processes of their own (fanout-followers.ts), not in the
 * bench's: an event loop serving a thousand streams lags, and in the bench's process that lag
 * was counted as delivery delay. Each process reads its frames with a light parser, times every
 * part and sends its delays back at the end; the bench merges them. Their event-loop delay and
 * the cores they kept busy stand beside the delays, so a slow p99 says whether the server, the
 * followers or a crowded machine held it up.
 */
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { namespace, type StoreName } from "../backends.ts";
import type { BenchConfig } from "../config.ts";
import type { FollowerCommand, FollowerReport, FollowersResult } from "../fanout-followers.ts";
import { cpuSeconds, demoDir, type ServerProcess, startServer } from "../processes.ts";
import { FANOUT_P99_GOAL_MS, fanoutDelayTarget, type ServerProfile } from "../report.ts";
import { startProfile, stopProfile } from "../server-profile.ts";
import { storeCalls } from "../server-stats.ts";
import { type ScenarioContext, sleep, timeout } from "./context.ts";

export interface FanoutPhase {
  followers: number;
  /** Parts the run yielded. */
  events: number;
  /** Parts timed at the followers (expected: followers × events). */
  deliveries: number;
  /** Parts a follower never got. */
  missing: number;
  /** Delays from the part's write on A (A's store call) to its arrival at a follower. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * p99 of the delays without each follower's first 5 parts (`SETTLED_AFTER`): B writes a burst
   * of events to every stream just before them (`run.in-progress`, `message.created`), so they
   * wait longest. Beside the target, which counts every part.
   */
  settledP99Ms: number;
  /**
   * p99 over the parts of the earliest arrival among all followers: how long B took to learn of
   * a part and read it; the rest of a delay is B writing it to its streams one after another.
   */
  firstP99Ms: number;
  /** p99 of the delays from the part's yield by A's agent instead (adds A's wait before the write). */
  fromYieldP99Ms: number;
  /** Parts without a write time (timed from their yield instead); expected 0. */
  unstamped: number;
  /** Seconds it took to attach every follower. */
  attachSeconds: number;
  /** Processes the followers ran in. */
  clientProcesses: number;
  /**
   * The highest p99 of the follower processes' event-loop delay while the parts arrived, in ms:
   * how late a follower could have been in timing an arrival (a bound on what the measuring
   * side adds).
   */
  clientLoopDelayP99Ms: number;
  /** Cores B's process kept busy from the resume to the end (1 = one core all the time). */
  serverCores?: number;
  /** Cores the follower processes kept busy meanwhile, together. */
  clientCores?: number;
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
  /** The first run to all the followers, with fewer parts, while B's code is cold; not the target. */
  cold?: FanoutPhase;
  many: FanoutPhase;
  /** Where B's time went, when the p99 target was missed (and BENCH_PROFILE_MISSED is on). */
  profile?: ServerProfile;
}

const INTERVAL_MS = 50;
/** Followers attaching at once, over all processes (more would overflow B's listen backlog and wait for SYN retries). */
const ATTACH_CONCURRENCY = 100;
/**
 * Processes the followers are spread over. Two: enough that no event loop serves more than 500
 * streams, few enough to leave the 2 cores to the servers, Redis and PostgreSQL.
 */
const CLIENT_PROCESSES = 2;

/** One child process of followers (fanout-followers.ts), driven over IPC. */
interface FollowerProcess {
  pid: number;
  /** Opens `count` streams; resolves once each has the run's `run.awaiting`. */
  follow(url: string, runId: string, count: number, concurrency: number, onAttached: () => void): Promise<void>;
  /** Starts the measurement; resolves with the delays once every stream has ended. */
  measure(): Promise<FollowersResult>;
  attached(): number;
  stop(): void;
}

async function startFollowers(): Promise<FollowerProcess> {
  const child: ChildProcess = fork(path.join(demoDir, "bench", "fanout-followers.ts"), [], {
    cwd: demoDir,
    execArgv: ["--import", "tsx"],
    serialization: "advanced",
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let log = "";
  const keep = (chunk: Buffer): void => {
    log = (log + chunk.toString()).slice(-5000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let attached = 0;
  let onAttached: (() => void) | undefined;
  /** The report awaited now: the first one `accept` takes. */
  let awaited:
    | { accept(report: FollowerReport): boolean; resolve(report: FollowerReport): void; reject(error: Error): void }
    | undefined;
  const until = (accept: (report: FollowerReport) => boolean): Promise<FollowerReport> =>
    new Promise((resolve, reject) => (awaited = { accept, resolve, reject }));
  child.on("message", (report: FollowerReport) => {
    if (report.type === "attached") {
      attached = report.attached;
      onAttached?.();
    }
    if (report.type === "error") awaited?.reject(new Error(`fan-out follower process: ${report.message}`));
    else if (awaited?.accept(report)) awaited.resolve(report);
  });
  child.once("exit", (code, signal) =>
    awaited?.reject(new Error(`fan-out follower process exited (${code ?? signal}):\n${log}`)),
  );
  await Promise.race([
    until((report) => report.type === "ready"),
    timeout(30_000, `fan-out follower process did not start within 30 s:\n${log}`),
  ]);
  const command = (message: FollowerCommand): void => {
    child.send(message);
  };
  return {
    pid: child.pid!,
    async follow(url, runId, count, concurrency, report) {
      attached = 0;
      onAttached = report;
      const done = until((answer) => answer.type === "attached" && answer.attached >= count);
      command({ type: "follow", url, runId, count, concurrency });
      await done;
    },
    async measure() {
      const done = until((report) => report.type === "done");
      command({ type: "start" });
      const report = await done;
      if (report.type !== "done") throw new Error(`fan-out follower process: unexpected ${report.type}`);
      return report.result;
    },
    attached: () => attached,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
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

/** The `p`-th percentile (0–100) of ascending `sorted` by nearest rank, as stats.ts's `percentile`; NaN when empty. */
function ranked(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

/** The samples of every process in one ascending array. */
function merged(parts: Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all.sort();
}

async function phase(
  a: ServerProcess,
  b: ServerProcess,
  clients: FollowerProcess[],
  count: number,
  events: number,
  report: (detail: string) => void,
  /** Called once every follower is attached, just before the run is resumed. */
  beforeResume?: () => Promise<void>,
): Promise<FanoutPhase> {
  const run = await post(`${a.url}/runs`, {
    agent_name: "broadcast",
    input: [{ role: "user", parts: [{ content: `count=${events} interval=${INTERVAL_MS}` }] }],
    mode: "sync",
  });
  if (run.status !== "awaiting") throw new Error(`broadcast run: expected awaiting, got ${run.status}`);
  // The followers spread evenly; with fewer followers than processes, only the first ones follow.
  const used = clients.slice(0, Math.min(clients.length, count));
  const shares = used.map((_, index) => Math.floor(count / used.length) + (index < count % used.length ? 1 : 0));
  const concurrency = Math.max(1, Math.floor(ATTACH_CONCURRENCY / used.length));
  const attachStarted = performance.now();
  const progress = (): void =>
    report(`${used.reduce((sum, client) => sum + client.attached(), 0)}/${count} followers attached on B`);
  await Promise.all(
    used.map((client, index) => client.follow(b.url, run.run_id, shares[index]!, concurrency, progress)),
  );
  const attachSeconds = (performance.now() - attachStarted) / 1000;
  await sleep(1000);

  const before = await storeCalls(b);
  const serverCpuAtStart = cpuSeconds(b.pid);
  const clientCpu = (): number | undefined =>
    used.reduce<number | undefined>((sum, client) => {
      const seconds = cpuSeconds(client.pid);
      return sum === undefined || seconds === undefined ? undefined : sum + seconds;
    }, 0);
  const clientCpuAtStart = clientCpu();
  await beforeResume?.();
  const measured = Promise.all(used.map((client) => client.measure()));
  const started = performance.now();
  report(`${count} followers: resumed on A, ${events} parts at ${1000 / INTERVAL_MS}/s`);
  await post(`${a.url}/runs/${run.run_id}`, {
    await_resume: { type: "message", message: { role: "user", parts: [{ content: "go" }] } },
    mode: "async",
  });
  const limitMs = events * INTERVAL_MS + 60_000;
  const deadline = timeout(limitMs, `the followers did not all see the run end within ${limitMs} ms`);
  const results = await Promise.race([measured, deadline]);
  const seconds = (performance.now() - started) / 1000;
  const serverCpu = cpuSeconds(b.pid);
  const clientCpuAtEnd = clientCpu();
  const after = await storeCalls(b);
  const completed = results.reduce((sum, result) => sum + result.completed, 0);
  if (completed < count)
    throw new Error(`${count - completed} of ${count} followers' streams ended before run.completed`);
  const byMethod = Object.fromEntries(
    Object.entries(after)
      .map(([method, calls]) => [method, (calls - (before[method] ?? 0)) / seconds] as const)
      .filter(([, perSecond]) => perSecond > 0),
  );
  const delays = merged(results.map((result) => result.delays));
  const fromYield = merged(results.map((result) => result.fromYield));
  const earliest = new Map<number, number>();
  for (const result of results)
    for (const [written, delay] of result.earliest)
      earliest.set(written, Math.min(delay, earliest.get(written) ?? Number.POSITIVE_INFINITY));
  return {
    followers: count,
    events,
    deliveries: delays.length,
    missing: results.reduce(
      (sum, result) => sum + result.parts.reduce((missing, parts) => missing + Math.max(0, events - parts), 0),
      0,
    ),
    p50Ms: ranked(delays, 50),
    p99Ms: ranked(delays, 99),
    maxMs: ranked(delays, 100),
    settledP99Ms: ranked(merged(results.map((result) => result.settled)), 99),
    firstP99Ms: ranked(Float64Array.from(earliest.values()).sort(), 99),
    fromYieldP99Ms: ranked(fromYield, 99),
    unstamped: results.reduce((sum, result) => sum + result.unstamped, 0),
    attachSeconds,
    clientProcesses: used.length,
    clientLoopDelayP99Ms: Math.max(...results.map((result) => result.loopDelayP99Ms)),
    ...(serverCpu === undefined || serverCpuAtStart === undefined
      ? {}
      : { serverCores: (serverCpu - serverCpuAtStart) / seconds }),
    ...(clientCpuAtEnd === undefined || clientCpuAtStart === undefined
      ? {}
      : { clientCores: (clientCpuAtEnd - clientCpuAtStart) / seconds }),
    storeCallsPerSecond: (total(after) - total(before)) / seconds,
    storeCallsByMethod: byMethod,
  };
}

/**
 * Where B's time goes when the target is missed: one more run to the same followers, B under
 * V8's sampling profiler (through its bench server's inspector) from the resume to the end.
 */
async function profileB(
  store: Exclude<StoreName, "memory">,
  a: ServerProcess,
  b: ServerProcess,
  clients: FollowerProcess[],
  config: BenchConfig,
  dir: string,
  report: (detail: string) => void,
): Promise<ServerProfile> {
  let startedAt = 0;
  const start = async (): Promise<void> => {
    await startProfile(b.url);
    startedAt = performance.now();
  };
  const profiled = await phase(a, b, clients, config.followers, config.fanoutEvents, report, start);
  const seconds = (performance.now() - startedAt) / 1000;
  const { file, summary } = await stopProfile(b.url, path.join(dir, `fanout-${store}-b.cpuprofile`));
  return {
    server: `fanout-${store}`,
    label: `Instance B of the ${store === "redis" ? "Redis" : "PostgreSQL"} fan-out`,
    reason: `${fanoutDelayTarget(store, profiled.followers)}: p99 ${profiled.p99Ms.toFixed(1)} ms in this run, goal ≤ ${FANOUT_P99_GOAL_MS} ms`,
    seconds,
    runs: profiled.deliveries,
    unit: "delivery",
    file,
    summary,
  };
}

export async function measureFanout(
  store: Exclude<StoreName, "memory">,
  { config, progress, profileDir, missedProfileDir }: ScenarioContext,
): Promise<FanoutResult> {
  const space = namespace(store);
  // A's bench server stamps each part with the time of the store call that writes it.
  const env = { ...space.env, BENCH_COUNT_STORE_CALLS: "1", BENCH_STAMP_WRITES: "1" };
  const a = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`fanout-${store}-a`) });
  let b: ServerProcess | undefined;
  const clients: FollowerProcess[] = [];
  try {
    b = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`fanout-${store}-b`) });
    for (let index = 0; index < CLIENT_PROCESSES; index++) clients.push(await startFollowers());
    const report = (detail: string): void => progress.update(detail);
    const one = await phase(a, b, clients, 1, config.fanoutEvents, report);
    const cold =
      config.fanoutWarmupEvents > 0
        ? await phase(a, b, clients, config.followers, config.fanoutWarmupEvents, report)
        : undefined;
    const many = await phase(a, b, clients, config.followers, config.fanoutEvents, report);
    const missed = many.p99Ms > FANOUT_P99_GOAL_MS && missedProfileDir !== undefined;
    const profile = missed ? await profileB(store, a, b, clients, config, missedProfileDir, report) : undefined;
    return {
      store,
      events: config.fanoutEvents,
      intervalMs: INTERVAL_MS,
      one,
      ...(cold ? { cold } : {}),
      many,
      ...(profile ? { profile } : {}),
    };
  } finally {
    for (const client of clients) client.stop();
    await Promise.all([a.stop(), b?.stop()]);
    await space.cleanup();
  }
}

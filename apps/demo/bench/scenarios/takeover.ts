/**
 * Durable runs: what a takeover costs and what a step costs. Two bench servers share one store
 * namespace, with a short lease. On A, a durable agent records BENCH_TAKEOVER_STEPS steps among
 * BENCH_TAKEOVER_EVENTS parts, then waits in a last step; A is killed (SIGKILL); B's sweep adopts
 * the run once the lease runs out and replays it. Measured: from the start of B's adoption (its
 * `updateRun` raising the epoch, timed by B's counting store) to the replay reaching live (the
 * last step's function runs on B and returns its wall-clock time). Before that, on A: the store
 * writes and the time a step adds to a run (a run of N steps against one of none).
 */
import { request } from "undici";
import { namespace, type StoreName } from "../backends.ts";
import { type ServerProcess, startServer } from "../processes.ts";
import { memoryReport, storeTimings } from "../server-stats.ts";
import { eventType, readSse } from "../sse.ts";
import { median } from "../stats.ts";
import { type ScenarioContext, sleep } from "./context.ts";

export interface TakeoverResult {
  store: StoreName;
  /** Recorded steps of the run taken over. */
  steps: number;
  /** Parts it had yielded (events in its log besides the status events). */
  events: number;
  leaseMs: number;
  /** From B's adoption starting to the replay reaching live: the target. */
  adoptionToLiveMs: number;
  /** From the SIGKILL of A to the replay reaching live: the lease, the sweep's period, the above. */
  killToLiveMs: number;
  /** Parts in the log once B completed the run (each part exactly once: `events` + 1). */
  partsAfter: number;
  /** How long B's readSteps calls took (p99 ms): the takeover reads the steps in one call. */
  readStepsMs?: number;
  /** Store writes one step adds to a run (createRun, updateRun, appendEvents, recordStep). */
  writesPerStep: number;
  /** recordStep calls per step. */
  recordStepPerStep: number;
  /** Time one step adds to a run whose steps do nothing (median of rounds), µs. */
  usPerStep: number;
}

const LEASE_MS = 1000;
/** Steps of the runs that time a step. */
const COST_STEPS = 1000;
const COST_ROUNDS = 3;
const WRITES = ["createRun", "updateRun", "appendEvents", "recordStep"];

const user = (content: string) => ({ role: "user", parts: [{ content }] });

async function post(url: string, body: unknown): Promise<{ run_id: string; status: string }> {
  const response = await fetch(`${url}/runs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const run = (await response.json()) as { run_id: string; status: string };
  if (!response.ok) throw new Error(`POST /runs: status ${response.status}: ${JSON.stringify(run)}`);
  return run;
}

/** Store writes counted on `server` so far, by method. */
async function writes(server: ServerProcess): Promise<Record<string, number>> {
  const { storeCalls } = await memoryReport(server);
  return Object.fromEntries(WRITES.map((method) => [method, storeCalls[method] ?? 0]));
}

/** A sync run of the durable agent with `steps` steps and no parts: its duration (ms) and the writes it made. */
async function costRun(server: ServerProcess, steps: number): Promise<{ ms: number; writes: Record<string, number> }> {
  const before = await writes(server);
  const started = performance.now();
  const run = await post(server.url, {
    agent_name: "durable-replay",
    input: [user(`steps=${steps} events=0`)],
    mode: "sync",
  });
  const ms = performance.now() - started;
  if (run.status !== "completed") throw new Error(`durable run of ${steps} steps ended ${run.status}`);
  const after = await writes(server);
  return { ms, writes: Object.fromEntries(WRITES.map((method) => [method, after[method]! - before[method]!])) };
}

/** Follows the run on `server` until `parts` parts have arrived, then hangs up. */
async function waitForParts(server: ServerProcess, runId: string, parts: number): Promise<void> {
  const controller = new AbortController();
  const response = await request(`${server.url}/runs/${runId}/events`, {
    headers: { accept: "text/event-stream" },
    signal: controller.signal,
  });
  if (response.statusCode !== 200) throw new Error(`stream of ${runId}: status ${response.statusCode}`);
  let seen = 0;
  let last: string | undefined;
  await readSse(response.body, (data) => {
    last = eventType(data);
    if (last === "message.part" && ++seen >= parts) controller.abort();
  }).catch((error: unknown) => {
    if (!controller.signal.aborted) throw error;
  });
  if (seen < parts) throw new Error(`run ${runId} ended (${last}) after ${seen} of ${parts} parts`);
}

export async function measureTakeover(
  store: Exclude<StoreName, "memory">,
  { config, progress, profileDir }: ScenarioContext,
): Promise<TakeoverResult> {
  const space = namespace(store);
  const env = { ...space.env, BENCH_COUNT_STORE_CALLS: "1", ACP_LEASE_MS: String(LEASE_MS) };
  const a = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`takeover-${store}-a`) });
  let b: ServerProcess | undefined;
  try {
    // The cost of a step: runs of COST_STEPS steps against runs of none, on A.
    progress.update("the cost of a step");
    const durations: number[] = [];
    let extraWrites = 0;
    let extraRecords = 0;
    for (let round = 0; round < COST_ROUNDS; round++) {
      const none = await costRun(a, 0);
      const many = await costRun(a, COST_STEPS);
      durations.push(((many.ms - none.ms) * 1000) / COST_STEPS);
      for (const method of WRITES) extraWrites += many.writes[method]! - none.writes[method]!;
      extraRecords += many.writes.recordStep! - none.writes.recordStep!;
    }

    // The run to take over: all steps and parts recorded on A, then A waits in its last step.
    const { takeoverSteps: steps, takeoverEvents: events } = config;
    progress.update(`recording ${steps} steps and ${events} events on A`);
    const run = await post(a.url, {
      agent_name: "durable-replay",
      input: [user(`steps=${steps} events=${events} takeover=1`)],
      mode: "async",
    });
    await waitForParts(a, run.run_id, events);
    b = await startServer({ script: "acp-server.ts", env, profileDir: profileDir(`takeover-${store}-b`) });
    await storeTimings(b, true);
    process.kill(a.pid, "SIGKILL");
    const killedAt = performance.timeOrigin + performance.now();
    await a.stop();

    progress.update("waiting for B to adopt and replay the run");
    const until = Date.now() + LEASE_MS + 60_000;
    let finished: { status: string; output: { parts: { content?: string }[] }[] } | undefined;
    while (Date.now() < until) {
      const response = await fetch(`${b.url}/runs/${run.run_id}`);
      const current = (await response.json()) as NonNullable<typeof finished>;
      if (["completed", "failed", "cancelled"].includes(current.status)) {
        finished = current;
        break;
      }
      await sleep(100);
    }
    if (finished?.status !== "completed") throw new Error(`the run taken over ended ${finished?.status ?? "not"}`);
    const parts = finished.output.flatMap((message) => message.parts.map((part) => part.content ?? ""));
    const liveAt = Number(/^live (\S+)$/.exec(parts.at(-1) ?? "")?.[1]);
    const adoption = (
      (await (await fetch(`${b.url}/__bench/adoptions`)).json()) as { runId: string; at: number }[]
    ).find((entry) => entry.runId === run.run_id);
    if (adoption === undefined || Number.isNaN(liveAt))
      throw new Error("B did not adopt the run, or it never got live");
    const timings = await storeTimings(b);
    return {
      store,
      steps,
      events,
      leaseMs: LEASE_MS,
      adoptionToLiveMs: liveAt - adoption.at,
      killToLiveMs: liveAt - killedAt,
      partsAfter: parts.length,
      ...(timings.readSteps ? { readStepsMs: timings.readSteps.p99Ms } : {}),
      writesPerStep: extraWrites / (COST_ROUNDS * COST_STEPS),
      recordStepPerStep: extraRecords / (COST_ROUNDS * COST_STEPS),
      usPerStep: median(durations),
    };
  } finally {
    await Promise.all([a.stop(), b?.stop()]);
    await space.cleanup();
  }
}

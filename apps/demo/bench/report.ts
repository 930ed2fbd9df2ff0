/**
 * The bench's results: the machine they were measured on, the targets of the performance issue
 * (met or missed), and the tables as markdown.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import type { StoreName } from "./backends.ts";
import type { BenchConfig } from "./config.ts";
import { describeGenerator, type LoadGenerator } from "./generator.ts";
import type { CrossInstanceResult } from "./scenarios/cross-instance.ts";
import type { FollowersResult } from "./scenarios/followers.ts";
import type { ObservabilityResult } from "./scenarios/observability.ts";
import type { StreamGrowthResult } from "./scenarios/stream-growth.ts";
import type { TakeoverResult } from "./scenarios/takeover.ts";
import type { ThroughputResult } from "./scenarios/throughput.ts";

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  /** 1-minute load average when the bench started and ended: other work on the machine skews the numbers. */
  load: { start: number; end?: number };
}

export interface BenchResults {
  date: string;
  machine: Machine;
  /** The commit measured, and whether the work tree had changes on top of it. */
  commit: string;
  settings: { generator: LoadGenerator } & Pick<
    BenchConfig,
    | "seconds"
    | "rounds"
    | "warmupSeconds"
    | "clients"
    | "streamSizes"
    | "streamEvents"
    | "crossEvents"
    | "followers"
    | "fanoutEvents"
    | "takeoverSteps"
    | "takeoverEvents"
  >;
  throughput: ThroughputResult[];
  streams: StreamGrowthResult[];
  cross: CrossInstanceResult[];
  followers: FollowersResult[];
  takeover: TakeoverResult[];
  /** Metrics and tracing on against off; absent when not measured. */
  observability?: ObservabilityResult;
  targets: TargetResult[];
}

export interface TargetResult {
  name: string;
  goal: string;
  value: string;
  met: boolean;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    load: { start: Math.round(os.loadavg()[0]! * 100) / 100 },
  };
}

export function commit(cwd: string): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd, encoding: "utf8" }).trim() !== "";
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return "unknown";
  }
}

const pct = (value: number): string => `${Math.round(value * 100)}%`;
const fixed = (value: number | undefined, digits = 1): string =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
const count = (value: number): string => Math.round(value).toLocaleString("en-US");

/** Checks the targets against what was measured; a target whose inputs were not measured is left out. */
export function evaluateTargets(results: Omit<BenchResults, "targets">): TargetResult[] {
  const targets: TargetResult[] = [];
  const rate = (target: string): number | undefined =>
    results.throughput.find((row) => row.target === target)?.perSecond;
  const ceiling = rate("ceiling");
  const memory = rate("memory");
  if (ceiling && memory)
    targets.push({
      name: "memory store sync runs vs bare Hono",
      goal: "≥ 50%",
      value: pct(memory / ceiling),
      met: memory / ceiling >= 0.5,
    });
  for (const [store, share] of [
    ["redis", 0.4],
    ["postgres", 0.25],
  ] as const) {
    const value = rate(store);
    if (memory && value)
      targets.push({
        name: `${store} sync runs vs memory store`,
        goal: `≥ ${pct(share)}`,
        value: pct(value / memory),
        met: value / memory >= share,
      });
  }
  for (const row of results.streams) {
    targets.push({
      name: `${row.store}: µs/event at N=10,000 over N=100`,
      goal: "≤ 1.5",
      value: fixed(row.ratio, 2),
      met: row.ratio <= 1.5,
    });
  }
  const latencyGoal: Partial<Record<StoreName, number>> = { redis: 20, postgres: 50 };
  for (const row of results.cross) {
    const goal = latencyGoal[row.store]!;
    targets.push({
      name: `${row.store}: cross-instance event latency p99`,
      goal: `≤ ${goal} ms`,
      value: `${fixed(row.p99Ms, 2)} ms`,
      met: row.p99Ms <= goal,
    });
  }
  for (const row of results.followers) {
    if (row.target === "ceiling") continue;
    // Heap and external memory after a full GC: what the streams keep alive. RSS is shown beside
    // it but moves with the allocator keeping or returning pages freed earlier.
    const retained = row.heapKbPerStream + row.externalKbPerStream;
    targets.push({
      name: `${row.target}: memory per open idle stream (heap + external)`,
      goal: "≤ 20 KB",
      value: `${fixed(retained)} KB`,
      met: retained <= 20,
    });
    if (row.pgConnections !== undefined && row.pool !== undefined) {
      targets.push({
        name: `postgres: connections at ${count(row.streams)} streams`,
        goal: `≤ pool + 1 = ${row.pool + 1}`,
        value: String(row.pgConnections),
        met: row.pgConnections <= row.pool + 1,
      });
    }
  }
  for (const row of results.takeover) {
    targets.push({
      name: `${row.store}: takeover of ${count(row.steps)} steps and ${count(row.events)} events, adoption to live`,
      goal: "< 1,000 ms",
      value: `${count(row.adoptionToLiveMs)} ms`,
      met: row.adoptionToLiveMs < 1000,
    });
    targets.push({
      name: `${row.store}: store writes per durable step`,
      goal: "1",
      value: fixed(row.writesPerStep, 2),
      met: Math.round(row.writesPerStep * 100) === 100,
    });
  }
  const observed = results.observability;
  if (observed)
    targets.push({
      name: "sync-run throughput lost with metrics and tracing on",
      goal: "≤ 10%",
      value: pct(observed.throughputCost),
      met: observed.throughputCost <= 0.1,
    });
  return targets;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function toMarkdown(results: BenchResults): string {
  const { machine: m, settings: s } = results;
  const out: string[] = [];
  out.push(
    `Measured ${results.date} on ${m.cpu} (${m.cores} cores), ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}; commit ${results.commit}. ` +
      `Servers, load generator, Redis and PostgreSQL all share this machine; everything on loopback. ` +
      `Load average (1 min) ${m.load.start} at the start, ${m.load.end ?? "?"} at the end.`,
  );
  if (results.targets.length > 0) {
    out.push(
      "### Targets",
      table(
        ["Target", "Goal", "Measured", ""],
        results.targets.map((t) => [t.name, t.goal, t.value, t.met ? "met" : "**missed**"]),
      ),
    );
  }
  if (results.throughput.length > 0) {
    const ceiling = results.throughput.find((row) => row.target === "ceiling")?.perSecond;
    out.push(
      `### 1. Throughput: sync runs of an echo agent, driven by ${describeGenerator(s.generator)}, ${s.seconds} s measured per server in ${s.rounds} interleaved round${s.rounds === 1 ? "" : "s"} after ${s.warmupSeconds} s warm-up`,
      table(
        ["Server", "runs/s", "p50 ms", "p99 ms", "of ceiling", "server CPU ms/run", "server cores busy", "errors"],
        results.throughput.map((row) => [
          row.target === "ceiling" ? "bare Hono (ceiling)" : `ACP, ${row.target} store`,
          count(row.perSecond),
          fixed(row.p50Ms, 2),
          fixed(row.p99Ms, 2),
          ceiling ? pct(row.perSecond / ceiling) : "–",
          fixed(row.serverCpuMsPerRun, 3),
          fixed(row.serverCores, 2),
          String(row.errors),
        ]),
      ),
    );
  }
  if (results.streams.length > 0) {
    out.push(
      `### 2. Stream cost: one stream run of an agent yielding N text parts (request to end of stream, median of runs timing ≥ ${count(s.streamEvents)} events per N)`,
      table(
        [
          "Store",
          ...s.streamSizes.map((n) => `µs/event N=${count(n)}`),
          `ratio ${count(s.streamSizes.at(-1)!)}/${count(s.streamSizes[0]!)}`,
        ],
        results.streams.map((row) => [
          row.store,
          ...row.sizes.map((size) => fixed(size.usPerEvent)),
          fixed(row.ratio, 2),
        ]),
      ),
    );
  }
  if (results.cross.length > 0) {
    out.push(
      "### 3. Cross-instance: event yielded on instance A to its arrival at a stream open on instance B",
      table(
        [
          "Store",
          "events",
          "rate/s",
          "p50 ms",
          "p99 ms",
          "max ms",
          "A: appendEvents p50 / p99 ms",
          "B: readEvents p50 / p99 ms",
        ],
        results.cross.map((row) => [
          row.store,
          count(row.events),
          count(row.rate),
          fixed(row.p50Ms, 2),
          fixed(row.p99Ms, 2),
          fixed(row.maxMs, 2),
          row.writerAppend
            ? `${fixed(row.writerAppend.p50Ms, 2)} / ${fixed(row.writerAppend.p99Ms, 2)} (${count(row.writerAppend.calls)} calls)`
            : "–",
          row.followerRead
            ? `${fixed(row.followerRead.p50Ms, 2)} / ${fixed(row.followerRead.p99Ms, 2)} (${count(row.followerRead.calls)} calls)`
            : "–",
        ]),
      ),
    );
  }
  if (results.followers.length > 0) {
    out.push(
      `### 4. Followers: ${count(s.followers)} open idle streams (awaiting runs) on one instance`,
      table(
        [
          "Server",
          "RSS KB/stream",
          "heap KB/stream",
          "external KB/stream",
          "store connections",
          "PostgreSQL (pool + 1)",
          "idle store calls/s",
        ],
        results.followers.map((row) => [
          row.target === "ceiling" ? "bare Hono streamSSE (floor)" : `ACP, ${row.target} store`,
          fixed(row.rssKbPerStream),
          fixed(row.heapKbPerStream),
          fixed(row.externalKbPerStream),
          row.storeConnections === undefined ? "–" : String(row.storeConnections),
          row.pgConnections === undefined ? "–" : `${row.pgConnections} (${row.pool! + 1})`,
          Object.entries(row.idleStoreCallsPerSecond)
            .map(([method, perSecond]) => `${method} ${perSecond < 10 ? fixed(perSecond) : count(perSecond)}`)
            .join(", ") || (row.target === "ceiling" ? "–" : "0"),
        ]),
      ),
    );
  }
  if (results.takeover.length > 0) {
    out.push(
      `### 6. Takeover: a durable run of ${count(s.takeoverSteps)} recorded steps and ${count(s.takeoverEvents)} parts, its instance killed, adopted and replayed by another (lease ${count(results.takeover[0]!.leaseMs)} ms)`,
      table(
        [
          "Store",
          "adoption to live ms",
          "kill to live ms",
          "parts after",
          "B: readSteps p99 ms",
          "µs per step",
          "store writes per step",
          "recordStep per step",
        ],
        results.takeover.map((row) => [
          row.store,
          count(row.adoptionToLiveMs),
          count(row.killToLiveMs),
          count(row.partsAfter),
          fixed(row.readStepsMs, 2),
          fixed(row.usPerStep, 0),
          fixed(row.writesPerStep, 2),
          fixed(row.recordStepPerStep, 2),
        ]),
      ),
    );
  }
  const bytes = results.streams.filter((row) => row.bytes);
  if (bytes.length > 0) {
    out.push(
      `### 5. Store bytes per event, one run of N=${count(s.streamSizes.at(-1)!)} parts`,
      table(
        ["Store", "events in the log", "bytes/event", "of which the event values", "measured as"],
        bytes.map((row) => [
          row.store,
          count(row.bytes!.events),
          count(row.bytes!.bytesPerEvent),
          count(row.bytes!.valueBytesPerEvent),
          row.bytes!.method,
        ]),
      ),
    );
  }
  const observed = results.observability;
  if (observed) {
    out.push(
      `### 7. Observability cost: sync runs of an echo agent on the memory store, driven by ${describeGenerator(s.generator)}, ${s.seconds} s per server in ${s.rounds} interleaved rounds; tracing is the OpenTelemetry Node SDK with a batch span processor whose exporter drops the spans`,
      table(
        ["Server", "runs/s", "p50 ms", "p99 ms", "server CPU ms/run", "throughput lost", "CPU per run", "errors"],
        observed.rows.map((row) => [
          { off: "nothing on", metrics: "metrics", tracing: "tracing", both: "metrics + tracing" }[row.variant],
          count(row.perSecond),
          fixed(row.p50Ms, 2),
          fixed(row.p99Ms, 2),
          fixed(row.serverCpuMsPerRun, 3),
          row.variant === "off" ? "–" : pct(row.throughputCost),
          row.variant === "off" || row.cpuCost === undefined ? "–" : `${row.cpuCost < 0 ? "" : "+"}${pct(row.cpuCost)}`,
          String(row.errors),
        ]),
      ),
    );
  }
  return `${out.join("\n\n")}\n`;
}

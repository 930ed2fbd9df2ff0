/**
 * The bench's results: the machine they were measured on, the targets of the performance issue
 * (met or missed), and the tables as markdown.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import type { StoreName } from "./backends.ts";
import type { BenchConfig } from "./config.ts";
import { describeGenerator, type LoadGenerator } from "./generator.ts";
import type { ProfileSummary } from "./profile-summary.ts";
import type { CrossInstanceResult } from "./scenarios/cross-instance.ts";
import type { FanoutResult } from "./scenarios/fanout.ts";
import type { FollowersResult } from "./scenarios/followers.ts";
import { type ObservabilityResult, SAMPLED_RATIO } from "./scenarios/observability.ts";
import type { StreamGrowthResult } from "./scenarios/stream-growth.ts";
import type { TakeoverResult } from "./scenarios/takeover.ts";
import type { ThroughputResult } from "./scenarios/throughput.ts";
import { PROFILE_INTERVAL_US } from "./server-profile.ts";

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
    | "fanoutWarmupEvents"
    | "takeoverSteps"
    | "takeoverEvents"
  >;
  throughput: ThroughputResult[];
  streams: StreamGrowthResult[];
  cross: CrossInstanceResult[];
  followers: FollowersResult[];
  fanout: FanoutResult[];
  takeover: TakeoverResult[];
  /** CPU profiles of the servers whose throughput target was missed. */
  profiles: ServerProfile[];
  /** Metrics and tracing on against off; absent when not measured. */
  observability?: ObservabilityResult;
  targets: TargetResult[];
}

export interface ServerProfile {
  /** A throughput server, or instance B of a fan-out (`fanout-redis`). */
  server: ProfiledServer | `fanout-${string}`;
  /** "ACP, PostgreSQL store". */
  label: string;
  /** The target missed: "PostgreSQL store sync runs vs memory store: 0.21× (goal ≥ 0.3×)". */
  reason: string;
  seconds: number;
  /** Runs completed while profiling (deliveries, for a fan-out). */
  runs: number;
  /** What `runs` counts, when not runs: "delivery". */
  unit?: string;
  /** Where the profile was saved, relative to the repository. */
  file: string;
  summary: ProfileSummary;
  /** The same server with nothing on, profiled the same way: what the profiled one spends more is the cost. */
  baseline?: { label: string; runs: number; file: string; summary: ProfileSummary };
}

export interface TargetResult {
  name: string;
  goal: string;
  value: string;
  met: boolean;
  /** A throughput target: the server whose profile shows where its time goes. */
  profile?: ProfiledServer;
  /** A check of an earlier issue, shown apart from the performance issue's targets. */
  earlier?: boolean;
  /** The README's row this target belongs to (the stores of one measure share a row). */
  headline?: string;
  store?: StoreName;
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
/**
 * `value` against a target's `goal`: with `digits` decimals, or more where those would round it
 * onto the goal (0.497 is not shown as 0.50 beside a goal of 0.5 and "not met").
 */
const fixedAgainst = (value: number, goal: number, digits = 1): string => {
  let shown = fixed(value, digits);
  for (let more = digits + 1; Number(shown) === goal && value !== goal && more <= digits + 3; more++)
    shown = fixed(value, more);
  return shown;
};
/** "5,120 – 6,030": the lowest and highest of some rates (older results lack them). */
const spread = (rates: readonly number[] | undefined): string =>
  rates && rates.length > 0 ? `${count(Math.min(...rates))} – ${count(Math.max(...rates))}` : "–";

const storeName = (store: string): string =>
  ({ memory: "memory", redis: "Redis", postgres: "PostgreSQL" })[store] ?? store;

/** The server whose CPU profile explains a missed throughput target. */
export type ProfiledServer = "memory" | "redis" | "postgres" | "observability";

/** What the sync-run throughput targets compare: the numerator's server is profiled when one is missed. */
export const THROUGHPUT_TARGETS = [
  { store: "memory", over: "ceiling", share: 0.5, name: "memory store sync runs vs bare Hono" },
  { store: "redis", over: "memory", share: 0.45, name: "Redis store sync runs vs memory store" },
  { store: "postgres", over: "memory", share: 0.3, name: "PostgreSQL store sync runs vs memory store" },
] as const;

/** Store calls a second 1,000 idle streams may cost one instance. */
export const IDLE_CALLS_GOAL = 5;
/** Fan-out: the p99 delay from an event's write on A to its delivery at B's followers, at most. */
export const FANOUT_P99_GOAL_MS = 50;

export const fanoutDelayTarget = (store: string, followers: number): string =>
  `${storeName(store)}: fan-out, p99 delay from an event's write on A to its delivery at ${count(followers)} followers on B`;

/** Fan-out: the followers' store calls may be at most this many times the single follower's … */
export const FANOUT_CALLS_RATIO = 1.5;
/** … or this many calls a second more (for rates too small for a ratio to mean much). */
export const FANOUT_CALLS_SLACK = 5;

/**
 * Checks the performance issue's targets against what was measured; a target whose inputs were
 * not measured is left out. `earlier` marks the checks of earlier issues, shown apart.
 */
export function evaluateTargets(results: Omit<BenchResults, "targets">): TargetResult[] {
  const targets: TargetResult[] = [];
  const rate = (target: string): number | undefined =>
    results.throughput.find((row) => row.target === target)?.perSecond;
  for (const { store, over, share, name } of THROUGHPUT_TARGETS) {
    const value = rate(store);
    const base = rate(over);
    if (value && base)
      targets.push({
        name,
        goal: `≥ ${share}×`,
        value: `${fixedAgainst(value / base, share, 2)}×`,
        met: value / base >= share,
        profile: store,
        headline: name.replace(" sync runs", ", sync runs"),
      });
  }
  const followers = results.followers.filter(
    (row): row is FollowersResult & { target: StoreName } => row.target !== "ceiling",
  );
  for (const row of followers) {
    // RSS grows less than the heap when the streams fill pages the process already held (freed by
    // the runs' creation): a stream costs at least what it keeps alive, so the larger counts.
    const retained = row.heapKbPerStream + row.externalKbPerStream;
    const perStream = Math.max(row.rssKbPerStream, retained);
    targets.push({
      name: `${storeName(row.target)}: RSS per open SSE stream of an awaiting run (${count(row.streams)} streams of ${count(row.streams)} runs)`,
      goal: "≤ 20 KiB",
      value: `${fixedAgainst(perStream, 20)} KiB${perStream > row.rssKbPerStream ? " (heap + external; RSS grew less)" : ""}`,
      met: perStream <= 20,
      headline: "RSS per open SSE stream",
      store: row.target,
    });
  }
  for (const row of results.fanout) {
    targets.push({
      name: fanoutDelayTarget(row.store, row.many.followers),
      goal: `≤ ${FANOUT_P99_GOAL_MS} ms`,
      value: `${fixedAgainst(row.many.p99Ms, FANOUT_P99_GOAL_MS)} ms`,
      met: row.many.p99Ms <= FANOUT_P99_GOAL_MS,
      headline: `Fan-out to ${count(row.many.followers)} followers on another instance, p99 delay`,
      store: row.store,
    });
    const one = row.one.storeCallsPerSecond;
    const many = row.many.storeCallsPerSecond;
    targets.push({
      name: `${storeName(row.store)}: fan-out, B's store calls/s with ${count(row.many.followers)} followers vs 1`,
      goal: `≤ ${FANOUT_CALLS_RATIO}× (or + ${FANOUT_CALLS_SLACK}/s)`,
      value: `${fixed(many)} vs ${fixed(one)} (${fixed(one > 0 ? many / one : Number.NaN, 2)}×)`,
      met: many <= Math.max(one * FANOUT_CALLS_RATIO, one + FANOUT_CALLS_SLACK),
    });
  }
  for (const row of followers) {
    const calls = Object.values(row.idleStoreCallsPerSecond).reduce((sum, perSecond) => sum + perSecond, 0);
    targets.push({
      name: `${storeName(row.target)}: store calls/s of ${count(row.streams)} idle streams on one instance`,
      goal: `≤ ${IDLE_CALLS_GOAL}`,
      value: fixed(calls),
      met: calls <= IDLE_CALLS_GOAL,
      headline: `Store calls/s of ${count(row.streams)} idle streams`,
      store: row.target,
    });
  }
  for (const row of results.streams) {
    targets.push({
      name: `${storeName(row.store)}: event-cost growth, µs/event at ${count(row.sizes.at(-1)!.n)} parts over ${count(row.sizes[0]!.n)}`,
      goal: "≤ 1.5×",
      value: `${fixed(row.ratio, 2)}×`,
      met: row.ratio <= 1.5,
    });
  }
  for (const row of results.takeover) {
    targets.push({
      name: `${storeName(row.store)}: store writes per durable step`,
      goal: "1",
      value: fixed(row.writesPerStep, 2),
      met: Math.round(row.writesPerStep * 100) === 100,
    });
  }
  for (const row of results.takeover) {
    targets.push({
      name: `${storeName(row.store)}: takeover of ${count(row.steps)} steps and ${count(row.events)} events, adoption to live`,
      goal: "< 1 s",
      value: `${count(row.adoptionToLiveMs)} ms`,
      met: row.adoptionToLiveMs < 1000,
    });
  }
  const observed = results.observability;
  if (observed)
    targets.push({
      name: "metrics + tracing on vs off: sync-run throughput lost (memory store)",
      goal: "≤ 10%",
      value: pct(observed.throughputCost),
      met: observed.throughputCost <= 0.1,
      profile: "observability",
      headline: "Metrics + tracing, throughput lost",
    });

  // Earlier issues' checks, kept.
  const latencyGoal: Partial<Record<StoreName, number>> = { redis: 20, postgres: 50 };
  for (const row of results.cross) {
    const goal = latencyGoal[row.store]!;
    targets.push({
      name: `${storeName(row.store)}: cross-instance event latency p99, one follower`,
      goal: `≤ ${goal} ms`,
      value: `${fixed(row.p99Ms, 2)} ms`,
      met: row.p99Ms <= goal,
      earlier: true,
    });
  }
  for (const row of followers) {
    if (row.pgConnections !== undefined && row.pool !== undefined) {
      targets.push({
        name: `PostgreSQL: connections at ${count(row.streams)} streams`,
        goal: `≤ pool + 1 = ${row.pool + 1}`,
        value: String(row.pgConnections),
        met: row.pgConnections <= row.pool + 1,
        earlier: true,
      });
    }
  }
  return targets;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function targetsTable(targets: TargetResult[]): string {
  return table(
    ["Target", "Goal", "Measured", ""],
    targets.map((t) => [t.name, t.goal, t.value, t.met ? "met" : "**not met**"]),
  );
}

export function toMarkdown(results: BenchResults): string {
  const { machine: m, settings: s } = results;
  const out: string[] = [];
  out.push(
    `Measured ${results.date} on ${m.cpu} (${m.cores} cores), ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}; commit ${results.commit}. ` +
      `Load generator: ${describeGenerator(s.generator)}. ` +
      "Servers, load generator, Redis and PostgreSQL all share this machine; everything on loopback. " +
      `Load average (1 min) ${m.load.start} at the start, ${m.load.end ?? "?"} at the end.`,
  );
  const current = results.targets.filter((t) => !t.earlier);
  const earlier = results.targets.filter((t) => t.earlier);
  if (current.length > 0) {
    const missed = current.filter((t) => !t.met).length;
    out.push(
      "### Targets",
      missed === 0
        ? `${current.length} of ${current.length} met.`
        : `${current.length - missed} of ${current.length} met. Where the time of a target not met goes: its profile in section 9 (unless profiles were turned off); what was tried against it: docs/benchmarks.md, under "What the numbers depend on", below these results.`,
      targetsTable(current),
    );
  }
  if (earlier.length > 0) out.push("Checks kept from earlier issues:", targetsTable(earlier));
  if (results.throughput.length > 0) {
    const ceiling = results.throughput.find((row) => row.target === "ceiling")?.perSecond;
    const storeCpu = results.throughput.some((row) => row.storeCpuMsPerRun !== undefined);
    out.push(
      `### 1. Throughput: sync runs of an echo agent, driven by ${describeGenerator(s.generator)}, ${s.seconds} s measured per server in ${s.rounds} interleaved round${s.rounds === 1 ? "" : "s"} after ${s.warmupSeconds} s warm-up`,
      table(
        [
          "Server",
          "runs/s",
          "p50 ms",
          "p99 ms",
          "of ceiling",
          "slices runs/s, min – max",
          "server CPU ms/run",
          "server cores busy",
          ...(storeCpu ? ["Redis / PostgreSQL CPU ms/run"] : []),
          "errors",
        ],
        results.throughput.map((row) => [
          row.target === "ceiling" ? "bare Hono (ceiling)" : `ACP, ${storeName(row.target)} store`,
          count(row.perSecond),
          fixed(row.p50Ms, 2),
          fixed(row.p99Ms, 2),
          ceiling ? pct(row.perSecond / ceiling) : "–",
          spread(row.sliceRates),
          fixed(row.serverCpuMsPerRun, 3),
          fixed(row.serverCores, 2),
          ...(storeCpu ? [row.storeCpuMsPerRun === undefined ? "–" : fixed(row.storeCpuMsPerRun, 3)] : []),
          String(row.errors),
        ]),
      ),
    );
  }
  if (results.streams.length > 0) {
    out.push(
      `### 2. Event cost: one stream run of an agent yielding N text parts (request to end of stream, median of runs timing ≥ ${count(s.streamEvents)} events per N)`,
      table(
        [
          "Store",
          ...s.streamSizes.map((n) => `µs/event N=${count(n)}`),
          `growth ${count(s.streamSizes.at(-1)!)}/${count(s.streamSizes[0]!)}`,
        ],
        results.streams.map((row) => [
          storeName(row.store),
          ...row.sizes.map((size) => fixed(size.usPerEvent)),
          `${fixed(row.ratio, 2)}×`,
        ]),
      ),
    );
  }
  if (results.cross.length > 0) {
    out.push(
      "### 3. Cross-instance: an event yielded on instance A to its arrival at one stream open on instance B",
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
          storeName(row.store),
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
      `### 4. Open streams: ${count(s.followers)} runs awaiting on one instance, one SSE stream open on each (memory after garbage collection, per stream; store calls while they sit idle)`,
      table(
        [
          "Server",
          "RSS KiB/stream",
          "heap + external KiB/stream",
          "store connections",
          "PostgreSQL (pool + 1)",
          "idle store calls/s",
          "by method",
        ],
        results.followers.map((row) => [
          row.target === "ceiling" ? "bare Hono streamSSE (floor)" : `ACP, ${storeName(row.target)} store`,
          fixed(row.rssKbPerStream),
          fixed(row.heapKbPerStream + row.externalKbPerStream),
          row.storeConnections === undefined ? "–" : String(row.storeConnections),
          row.pgConnections === undefined ? "–" : `${row.pgConnections} (${row.pool! + 1})`,
          row.target === "ceiling"
            ? "–"
            : fixed(Object.values(row.idleStoreCallsPerSecond).reduce((sum, perSecond) => sum + perSecond, 0)),
          Object.entries(row.idleStoreCallsPerSecond)
            .map(([method, perSecond]) => `${method} ${perSecond < 10 ? fixed(perSecond) : count(perSecond)}`)
            .join(", ") || "–",
        ]),
      ),
    );
  }
  if (results.fanout.length > 0) {
    const first = results.fanout[0]!;
    out.push(
      `### 5. Fan-out: one run on instance A yielding ${count(first.events)} timestamped parts, one every ${first.intervalMs} ms, followed by 1 and by ${count(first.many.followers)} SSE clients on instance B${first.cold ? ` (the ${count(first.cold.followers)} first in a shorter run of ${count(first.cold.events)} parts, while B is cold)` : ""}`,
      table(
        [
          "Store",
          "followers on B",
          "parts",
          "deliveries",
          "missing",
          "p50 ms",
          "p99 ms",
          "max ms",
          "p99 after 5 parts ms",
          "first follower p99 ms",
          "p99 from the yield ms",
          "attach s",
          "B cores busy",
          "client processes",
          "their cores busy",
          "their loop delay p99 ms",
          "B's store calls/s",
          "by method",
        ],
        results.fanout.flatMap((row) =>
          [
            { phase: row.one, label: count(row.one.followers) },
            ...(row.cold ? [{ phase: row.cold, label: `${count(row.cold.followers)}, first run (B cold)` }] : []),
            { phase: row.many, label: count(row.many.followers) },
          ].map(({ phase, label }) => [
            storeName(row.store),
            label,
            count(phase.events),
            count(phase.deliveries),
            count(phase.missing),
            fixed(phase.p50Ms, 2),
            fixed(phase.p99Ms, 2),
            fixed(phase.maxMs, 2),
            fixed(phase.settledP99Ms, 2),
            fixed(phase.firstP99Ms, 2),
            phase.unstamped > 0
              ? `${fixed(phase.fromYieldP99Ms, 2)} (${count(phase.unstamped)} unstamped)`
              : fixed(phase.fromYieldP99Ms, 2),
            fixed(phase.attachSeconds, 1),
            fixed(phase.serverCores, 2),
            count(phase.clientProcesses),
            fixed(phase.clientCores, 2),
            fixed(phase.clientLoopDelayP99Ms, 1),
            fixed(phase.storeCallsPerSecond),
            Object.entries(phase.storeCallsByMethod)
              .map(([method, perSecond]) => `${method} ${perSecond < 10 ? fixed(perSecond) : count(perSecond)}`)
              .join(", ") || "–",
          ]),
        ),
      ),
    );
  }
  const bytes = results.streams.filter((row) => row.bytes);
  if (bytes.length > 0) {
    out.push(
      `### 6. Store bytes per event, one run of N=${count(s.streamSizes.at(-1)!)} parts`,
      table(
        ["Store", "events in the log", "bytes/event", "of which the event values", "measured as"],
        bytes.map((row) => [
          storeName(row.store),
          count(row.bytes!.events),
          count(row.bytes!.bytesPerEvent),
          count(row.bytes!.valueBytesPerEvent),
          row.bytes!.method,
        ]),
      ),
    );
  }
  if (results.takeover.length > 0) {
    out.push(
      `### 7. Durable runs: a run of ${count(s.takeoverSteps)} recorded steps and ${count(s.takeoverEvents)} parts, its instance killed, adopted and replayed by another (lease ${count(results.takeover[0]!.leaseMs)} ms); the cost of a step`,
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
          storeName(row.store),
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
  const observed = results.observability;
  if (observed) {
    out.push(
      `### 8. Observability cost: sync runs of an echo agent on the memory store, driven by ${describeGenerator(s.generator)}, ${s.seconds} s per server in ${s.rounds} interleaved rounds; tracing is the OpenTelemetry Node SDK, sampling every run unless the row says otherwise, with a batch span processor whose exporter drops the spans`,
      table(
        [
          "Server",
          "runs/s",
          "slices runs/s, min – max",
          "p50 ms",
          "p99 ms",
          "server CPU ms/run",
          "throughput lost",
          "CPU per run",
          "errors",
        ],
        observed.rows.map((row) => [
          {
            off: "nothing on",
            metrics: "metrics",
            context: "Node's async context tracking alone (no spans)",
            tracing: "tracing",
            both: "metrics + tracing",
            sampled: `metrics + tracing, ${pct(SAMPLED_RATIO)} of runs sampled (not the target)`,
          }[row.variant],
          count(row.perSecond),
          spread(row.sliceRates),
          fixed(row.p50Ms, 2),
          fixed(row.p99Ms, 2),
          fixed(row.serverCpuMsPerRun, 3),
          row.variant === "off" ? "–" : pct(row.throughputCost),
          row.variant === "off" || row.cpuCost === undefined ? "–" : `${row.cpuCost < 0 ? "" : "+"}${pct(row.cpuCost)}`,
          String(row.errors),
        ]),
      ),
    );
    const off = observed.rows.find((row) => row.variant === "off")?.serverCpuMsPerRun;
    if (observed.sdkSpansUsPerRun !== undefined)
      out.push(
        `The SDK alone, for comparison: the three spans of a traced sync run (the request's, the run's \`invoke_agent\`, the store call's), made with their attributes and ended through the same SDK set-up in a loop of their own, without a server: ${fixed(observed.sdkSpansUsPerRun, 1)} µs of CPU a run${off ? `, ${pct(observed.sdkSpansUsPerRun / 1000 / off)} of an untraced run's server CPU above` : ""}. That is a floor: run between a server's requests, the same code costs more, and when this target is missed the profiles of section 9 show how much.`,
      );
  }
  const fanoutProfiles = results.fanout.flatMap((row) => (row.profile ? [row.profile] : []));
  if (results.profiles.length > 0 || fanoutProfiles.length > 0) {
    out.push(
      "### 9. Where the time goes: CPU profiles of the servers whose target was not met",
      [
        `V8's sampling profiler, every ${PROFILE_INTERVAL_US} µs, started and stopped through the bench server's inspector (start-up stays out).`,
        results.profiles.length > 0
          ? `A throughput server was run again after the measurements, warmed up, then profiled for ${results.profiles[0]!.seconds} s under the same load.`
          : "",
        fanoutProfiles.length > 0
          ? "Instance B of a fan-out that missed its target was profiled during one more run to the same followers, from the resume to the last follower's end."
          : "",
        `Self time is time spent in a function's own code; "total" counts its callees too. Areas: our packages (\`@acp/*\`), each dependency, Node's internals, garbage collection.`,
      ]
        .filter(Boolean)
        .join(" "),
    );
    for (const profile of [...results.profiles, ...fanoutProfiles]) out.push(profileMarkdown(profile));
  }
  return `${out.join("\n\n")}\n`;
}

function profileMarkdown(profile: ServerProfile): string {
  const { summary, unit = "run" } = profile;
  const share = (micros: number): string => `${((micros / summary.busyUs) * 100).toFixed(1)}%`;
  // The functions' ranking is cut at the report's length; the areas, all kept, are cut to match.
  const areas = summary.areas.slice(0, summary.functions.length);
  const rows = Math.max(areas.length, summary.functions.length, summary.inclusive.length);
  const cell = (entries: [string, number][], index: number): string[] => {
    const entry = entries[index];
    return entry ? [share(entry[1]), `\`${entry[0]}\``] : ["", ""];
  };
  return [
    `**${profile.label}** (${profile.reason}): ${count(profile.runs)} ${unit === "run" ? "runs" : "deliveries"} profiled, busy ${(summary.busyUs / 1e6).toFixed(2)} s of ${fixed(profile.seconds, 1)} s, ${fixed(summary.busyUs / Math.max(profile.runs, 1), 0)} µs of CPU per ${unit}.`,
    "",
    table(
      ["self", "area", "self", "function", "total", "package function"],
      Array.from({ length: rows }, (_, index) => [
        ...cell(areas, index),
        ...cell(summary.functions, index),
        ...cell(summary.inclusive, index),
      ]),
    ),
    ...(profile.baseline ? ["", costByArea(profile, profile.baseline)] : []),
  ].join("\n");
}

/** Areas whose self time per run moved less than this are summed into one row. */
const SMALL_AREA_US = 1;

/**
 * What `profile` spends per run more than `baseline` (the same server with nothing on), area by
 * area: where the cost of a capability goes, and how it compares with a 10% throughput budget.
 */
function costByArea(profile: ServerProfile, baseline: NonNullable<ServerProfile["baseline"]>): string {
  const perRun = (summary: ProfileSummary, runs: number) =>
    new Map(summary.areas.map(([area, micros]) => [area, micros / Math.max(runs, 1)]));
  const on = perRun(profile.summary, profile.runs);
  const off = perRun(baseline.summary, baseline.runs);
  const moved = [...new Set([...on.keys(), ...off.keys()])]
    .map((area) => ({ area, off: off.get(area) ?? 0, on: on.get(area) ?? 0 }))
    .sort((a, b) => b.on - b.off - (a.on - a.off));
  const shown = moved.filter((row) => Math.abs(row.on - row.off) >= SMALL_AREA_US);
  const rest = moved.filter((row) => Math.abs(row.on - row.off) < SMALL_AREA_US);
  const sum = (rows: typeof moved, key: "on" | "off") => rows.reduce((total, row) => total + row[key], 0);
  const line = (name: string, offUs: number, onUs: number) => [
    name,
    fixed(offUs, 1),
    fixed(onUs, 1),
    `${onUs >= offUs ? "+" : ""}${fixed(onUs - offUs, 1)}`,
  ];
  const offTotal = sum(moved, "off");
  const onTotal = sum(moved, "on");
  const otel = moved.filter((row) => row.area.startsWith("@opentelemetry/"));
  const otelUs = sum(otel, "on") - sum(otel, "off");
  // Losing 10% of the runs a second on a busy server is about 11% more CPU per run (1 / 0.9).
  const budgetUs = offTotal * (1 / 0.9 - 1);
  return [
    `Where its CPU per run goes beyond the same server with nothing on (**${baseline.label}**, profiled the same way just before: ${count(baseline.runs)} runs, ${fixed(offTotal, 0)} µs of CPU per run), self time per run by area:`,
    "",
    table(
      ["area", "nothing on, µs/run", "profiled, µs/run", "difference"],
      [
        ...shown.map((row) => line(`\`${row.area}\``, row.off, row.on)),
        ...(rest.length > 0 ? [line(`${rest.length} other areas`, sum(rest, "off"), sum(rest, "on"))] : []),
        line("**all**", offTotal, onTotal),
      ],
    ),
    "",
    `A 10% loss of throughput is about ${fixed(budgetUs, 0)} µs more CPU per run here; the OpenTelemetry packages' own code takes ${fixed(otelUs, 0)} µs more.`,
  ].join("\n");
}

/** The headline table of README.md: one row per headline measure (its stores side by side), with the date, commit and generator. */
export function toHeadline(results: BenchResults): string {
  const current = results.targets.filter((t) => !t.earlier);
  const rows = new Map<string, TargetResult[]>();
  for (const target of current) {
    if (target.headline === undefined) continue;
    rows.set(target.headline, [...(rows.get(target.headline) ?? []), target]);
  }
  const met = current.filter((t) => t.met).length;
  return [
    `Measured ${results.date.slice(0, 10)}, commit ${results.commit}, load generator ${describeGenerator(results.settings.generator)}; ${met} of ${current.length} targets met.`,
    "",
    table(
      ["Measure", "Goal", "Measured", ""],
      [...rows].map(([measure, targets]) => [
        measure,
        targets[0]!.goal,
        targets.length === 1
          ? targets[0]!.value
          : targets.map((t) => `${storeName(t.store ?? "")} ${t.value.replace(/ \(.*\)$/, "")}`).join(", "),
        targets.every((t) => t.met) ? "met" : "not met",
      ]),
    ),
  ].join("\n");
}

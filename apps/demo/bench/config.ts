/**
 * The bench's settings, from the environment. The defaults keep a full run under about ten
 * minutes on a 2-core machine.
 */
import { STORES, type StoreName } from "./backends.ts";

function whole(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`${name} must be a number of at least ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

function list<T extends string>(name: string, allowed: readonly T[]): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return [...allowed];
  const chosen = raw
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  const unknown = chosen.filter((item) => !allowed.includes(item as T));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(", ")}; choose from ${allowed.join(", ")}`);
  return chosen as T[];
}

function oneOf<T extends string>(name: string, allowed: readonly [T, ...T[]]): T {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return allowed[0];
  if (!allowed.includes(raw as T))
    throw new Error(`${name}: choose one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

export const SCENARIOS = [
  "throughput",
  "streams",
  "cross",
  "followers",
  "fanout",
  "takeover",
  "observability",
] as const;
export type GeneratorChoice = "auto" | "wrk" | "javascript";
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchConfig {
  /** BENCH_SECONDS: measured seconds of each throughput target in all rounds, and the idle window of the followers. @default 10 */
  seconds: number;
  /** BENCH_ROUNDS: interleaved rounds the throughput targets are measured in, each one BENCH_SECONDS / BENCH_ROUNDS per target. @default 5 */
  rounds: number;
  /** BENCH_WARMUP_SECONDS: unmeasured seconds of load on each throughput server before the rounds. @default 5 */
  warmupSeconds: number;
  /** BENCH_CLIENTS: concurrent keep-alive connections of the throughput runs. @default 64 */
  clients: number;
  /** BENCH_GENERATOR: the throughput load generator; `auto` is wrk when it is on PATH. @default auto */
  generator: GeneratorChoice;
  /** BENCH_WRK_THREADS: wrk's threads (event loops). @default 1 */
  wrkThreads: number;
  /** BENCH_STORES: which stores, comma-separated. @default memory,redis,postgres */
  stores: StoreName[];
  /** BENCH_ONLY: which scenarios, comma-separated. @default throughput,streams,cross,followers,fanout,takeover,observability */
  scenarios: Scenario[];
  /** The N of the stream-cost runs. */
  streamSizes: number[];
  /** BENCH_STREAM_EVENTS: events timed at each N (so runs at small N repeat). @default 20_000 */
  streamEvents: number;
  /** BENCH_CROSS_EVENTS: timestamped events of the cross-instance run. @default 3000 */
  crossEvents: number;
  /** BENCH_FOLLOWERS: open streams of the followers and fan-out measurements. @default 1000 */
  followers: number;
  /** BENCH_FANOUT_EVENTS: timestamped parts of the fan-out run, 20 a second. @default 300 */
  fanoutEvents: number;
  /** BENCH_FANOUT_WARMUP_EVENTS: parts of the fan-out's first round to all the followers, reported apart (B's code still cold); 0 skips it. @default 20 */
  fanoutWarmupEvents: number;
  /** BENCH_TAKEOVER_STEPS: recorded steps of the durable run taken over. @default 1000 */
  takeoverSteps: number;
  /** BENCH_TAKEOVER_EVENTS: parts the durable run taken over has yielded. @default 10_000 */
  takeoverEvents: number;
  /** BENCH_PROFILE=1: every server process writes a CPU profile (node --cpu-prof). */
  profile: boolean;
  /** BENCH_PROFILE_MISSED=0: no profile of the servers whose throughput target was missed. @default on */
  profileMissed: boolean;
  /** `--update-docs` or BENCH_UPDATE_DOCS=1: replace the table in docs/benchmarks.md. */
  updateDocs: boolean;
}

export function configFromEnv(argv: string[] = process.argv.slice(2)): BenchConfig {
  return {
    seconds: whole("BENCH_SECONDS", 10),
    rounds: whole("BENCH_ROUNDS", 5),
    warmupSeconds: whole("BENCH_WARMUP_SECONDS", 5, 0),
    clients: whole("BENCH_CLIENTS", 64),
    generator: oneOf("BENCH_GENERATOR", ["auto", "wrk", "javascript"] as const),
    wrkThreads: whole("BENCH_WRK_THREADS", 1),
    stores: list("BENCH_STORES", STORES),
    scenarios: list("BENCH_ONLY", SCENARIOS),
    streamSizes: [1000, 10_000],
    streamEvents: whole("BENCH_STREAM_EVENTS", 20_000),
    crossEvents: whole("BENCH_CROSS_EVENTS", 3000),
    followers: whole("BENCH_FOLLOWERS", 1000),
    fanoutEvents: whole("BENCH_FANOUT_EVENTS", 300),
    fanoutWarmupEvents: whole("BENCH_FANOUT_WARMUP_EVENTS", 20, 0),
    takeoverSteps: whole("BENCH_TAKEOVER_STEPS", 1000),
    takeoverEvents: whole("BENCH_TAKEOVER_EVENTS", 10_000, 0),
    profile: process.env.BENCH_PROFILE === "1" || argv.includes("--profile"),
    profileMissed: process.env.BENCH_PROFILE_MISSED !== "0",
    updateDocs: process.env.BENCH_UPDATE_DOCS === "1" || argv.includes("--update-docs"),
  };
}

/**
 * What metrics and tracing cost: sync runs of the echo agent on ACP instances over the memory
 * store (the store adds least, so the cost shows most): one with nothing on, one with the metrics
 * on, one with the OpenTelemetry SDK recording every span (see tracing-sdk.ts), one with both, one
 * with both but the SDK sampling one run in ten (what a busy fleet would run; not the target), and
 * one with only Node's async context tracking on (no spans), which tracing needs.
 * All run from the start and are measured in interleaved rounds, so that the machine's load
 * weighs on all alike.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { demoDir } from "../processes.ts";
import { formatCount } from "../progress.ts";
import type { ScenarioContext } from "./context.ts";
import { type ThroughputResult, ThroughputServer } from "./throughput-server.ts";

export type ObservabilityVariant = "off" | "metrics" | "context" | "tracing" | "both" | "sampled";

export interface ObservabilityRow extends ThroughputResult {
  variant: ObservabilityVariant;
  /** Share of the throughput lost against `off`: 1 − runs/s ÷ off's. */
  throughputCost: number;
  /** Extra server CPU per run against `off`: ms/run ÷ off's − 1 (undefined off Linux). */
  cpuCost?: number;
}

export interface ObservabilityResult {
  rows: ObservabilityRow[];
  /** The SDK's own CPU for one traced run's three spans, with no server around them (span-cost.ts), µs. */
  sdkSpansUsPerRun?: number;
  /** The `both` row's throughput cost: what the issue bounds (≤ 10%). */
  throughputCost: number;
}

/**
 * `context` is not a capability: Node's async context tracking alone (what the SDK's context
 * manager turns on), so that the report shows which share of tracing's cost is Node's hooks.
 */
const VARIANTS: readonly ObservabilityVariant[] = ["off", "metrics", "context", "tracing", "both", "sampled"];

/** The share of runs the `sampled` variant's SDK records (OTEL_TRACES_SAMPLER_ARG). */
export const SAMPLED_RATIO = 0.1;

/** The SDK must not start metric or log exporters of its own: only traces are measured. */
export function envOf(variant: ObservabilityVariant): Record<string, string> {
  if (variant === "off") return {};
  const quiet = { OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none" };
  if (variant !== "sampled") return { BENCH_OBSERVABILITY: variant, ...quiet };
  // The SDK's own sampler, set as an operator would: a ratio of the traces that start here.
  return {
    BENCH_OBSERVABILITY: "both",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: String(SAMPLED_RATIO),
    ...quiet,
  };
}

/** The variants in round `round`'s order: each round starts one further along. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** span-cost.ts in a process of its own: the SDK's CPU for one run's spans. */
async function spanCost(): Promise<{ usPerRun: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "bench/span-cost.ts"], {
    cwd: demoDir,
    env: { ...process.env, ...envOf("tracing") },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as { usPerRun: number };
}

export async function measureObservability(context: ScenarioContext): Promise<ObservabilityResult> {
  const { config, progress } = context;
  const servers: { variant: ObservabilityVariant; server: ThroughputServer }[] = [];
  try {
    for (const variant of VARIANTS) {
      progress.update(`starting ${variant}`);
      const server = await ThroughputServer.start("memory", context, envOf(variant), `observability-${variant}`);
      servers.push({ variant, server });
    }
    for (const { variant, server } of servers) {
      await server.warmUp(config.warmupSeconds * 1000, (_phase, elapsedMs) =>
        progress.update(`warm-up ${variant} ${Math.floor(elapsedMs / 1000)}/${config.warmupSeconds} s`),
      );
    }
    const sliceMs = (config.seconds * 1000) / config.rounds;
    for (let round = 0; round < config.rounds; round++) {
      for (const { variant, server } of rotated(servers, round)) {
        const name = `round ${round + 1}/${config.rounds}, ${variant}`;
        await server.measureSlice(sliceMs, (phase, elapsedMs, completed) =>
          progress.update(
            phase === "measuring" && completed !== undefined
              ? `${name}, ${formatCount(completed / Math.max(elapsedMs / 1000, 0.001))} req/s`
              : `${name}, ${phase} ${(elapsedMs / 1000).toFixed(0)} s`,
          ),
        );
      }
    }
    const results = servers.map(({ variant, server }) => ({ variant, result: server.result() }));
    const off = results[0]!.result;
    const rows = results.map(({ variant, result }, index): ObservabilityRow => {
      if (result.errors > 0)
        console.error(
          `\n[bench] observability ${variant}: ${result.errors} failed requests, first: ${result.firstError}\n${servers[index]!.server.server.output().slice(-2000)}`,
        );
      return {
        ...result,
        variant,
        throughputCost: 1 - result.perSecond / off.perSecond,
        ...(result.serverCpuMsPerRun && off.serverCpuMsPerRun
          ? { cpuCost: result.serverCpuMsPerRun / off.serverCpuMsPerRun - 1 }
          : {}),
      };
    });
    progress.update("the SDK's spans alone");
    const { usPerRun } = await spanCost();
    return {
      rows,
      sdkSpansUsPerRun: usPerRun,
      throughputCost: rows.find((row) => row.variant === "both")!.throughputCost,
    };
  } finally {
    await Promise.allSettled(servers.map(({ server }) => server.stop()));
  }
}

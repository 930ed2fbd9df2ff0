/** What every scenario gets from the runner. */
import type { BenchConfig } from "../config.ts";
import type { LoadGenerator } from "../generator.ts";
import type { Progress } from "../progress.ts";

export interface ScenarioContext {
  config: BenchConfig;
  progress: Progress;
  /** The load generator of the throughput measurements. */
  generator: LoadGenerator;
  /** Where the servers of a step write their CPU profiles; `undefined` when not profiling. */
  profileDir(step: string): string | undefined;
  /** Where the profile of a missed target is saved; `undefined` when those are not taken (`BENCH_PROFILE_MISSED=0`). */
  missedProfileDir: string | undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `message` after `ms`, without keeping the process alive: the loser of a race against work. */
export const timeout = (ms: number, message: string): Promise<never> =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());

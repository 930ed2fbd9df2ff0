/**
 * Where the time goes when a throughput target is missed: the server of the missed target (the
 * memory, Redis or PostgreSQL store's, or the one with metrics and tracing on) is started again
 * after the measurements, warmed up under the same load, then profiled for a few seconds under it
 * (V8's sampling profiler, started and stopped through the bench server's inspector session, so
 * that start-up stays out of it). The profile is saved beside the results; its summary goes into
 * the report.
 */
import path from "node:path";
import type { ServerProfile, TargetResult } from "../report.ts";
import { startProfile, stopProfile } from "../server-profile.ts";
import type { ScenarioContext } from "./context.ts";
import { envOf } from "./observability.ts";
import { ThroughputServer } from "./throughput-server.ts";

const WARM_UP_MS = 3000;
const PROFILE_SECONDS = 5;

const LABELS = {
  memory: "ACP, memory store",
  redis: "ACP, Redis store",
  postgres: "ACP, PostgreSQL store",
  observability: "ACP, memory store, metrics + tracing on",
} as const;

/** Profiles the server of every missed throughput target; `dir` receives the `.cpuprofile` files. */
export async function profileMissed(
  targets: readonly TargetResult[],
  context: ScenarioContext,
  dir: string,
): Promise<ServerProfile[]> {
  const profiles: ServerProfile[] = [];
  for (const target of targets) {
    if (target.met || target.profile === undefined) continue;
    const which = target.profile;
    context.progress.update(`profiling ${LABELS[which]}`);
    const server =
      which === "observability"
        ? await ThroughputServer.start("memory", context, envOf("both"), "profile-observability")
        : await ThroughputServer.start(which, context, {}, `profile-${which}`);
    try {
      await server.warmUp(WARM_UP_MS);
      await startProfile(server.server.url);
      const window = await server.warmUp(PROFILE_SECONDS * 1000);
      const { file, summary } = await stopProfile(server.server.url, path.join(dir, `${which}.cpuprofile`));
      profiles.push({
        server: which,
        label: LABELS[which],
        reason: `${target.name}: ${target.value}, goal ${target.goal}`,
        seconds: PROFILE_SECONDS,
        runs: window.completed,
        file,
        summary,
      });
    } finally {
      await server.stop();
    }
  }
  return profiles;
}

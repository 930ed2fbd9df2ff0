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

const BASELINE_LABEL = "ACP, memory store, nothing on";

/** What one profiled window of a server gave. */
type Window = Pick<ServerProfile, "runs" | "file" | "summary">;

/** Starts a throughput server, warms it up, profiles it for {@link PROFILE_SECONDS} under load, stops it. */
async function profileServer(
  context: ScenarioContext,
  store: "memory" | "redis" | "postgres",
  env: Record<string, string>,
  file: string,
): Promise<Window> {
  const server = await ThroughputServer.start(store, context, env, path.basename(file, ".cpuprofile"));
  try {
    await server.warmUp(WARM_UP_MS);
    await startProfile(server.server.url);
    const window = await server.warmUp(PROFILE_SECONDS * 1000);
    return { runs: window.completed, ...(await stopProfile(server.server.url, file)) };
  } finally {
    await server.stop();
  }
}

/**
 * Profiles the server of every missed throughput target; `dir` receives the `.cpuprofile` files.
 * For the cost of metrics and tracing, the server with nothing on is profiled first, the same
 * way: what the traced server spends more, area by area, is the cost.
 */
export async function profileMissed(
  targets: readonly TargetResult[],
  context: ScenarioContext,
  dir: string,
): Promise<ServerProfile[]> {
  const profiles: ServerProfile[] = [];
  for (const target of targets) {
    if (target.met || target.profile === undefined) continue;
    const which = target.profile;
    const reason = `${target.name}: ${target.value}, goal ${target.goal}`;
    if (which !== "observability") {
      context.progress.update(`profiling ${LABELS[which]}`);
      const window = await profileServer(context, which, {}, path.join(dir, `${which}.cpuprofile`));
      profiles.push({ server: which, label: LABELS[which], reason, seconds: PROFILE_SECONDS, ...window });
      continue;
    }
    context.progress.update(`profiling ${BASELINE_LABEL}`);
    const baseline = await profileServer(
      context,
      "memory",
      envOf("off"),
      path.join(dir, "observability-off.cpuprofile"),
    );
    context.progress.update(`profiling ${LABELS[which]}`);
    const window = await profileServer(context, "memory", envOf("both"), path.join(dir, "observability.cpuprofile"));
    profiles.push({
      server: which,
      label: LABELS[which],
      reason,
      seconds: PROFILE_SECONDS,
      ...window,
      baseline: { label: BASELINE_LABEL, ...baseline },
    });
  }
  return profiles;
}

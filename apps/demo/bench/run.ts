/**
 * `pnpm bench`: starts its own servers on loopback, measures what the performance issue asks
 * for, prints the tables and writes them to bench-results/ (JSON and markdown). Settings come
 * from the environment (see config.ts); `--update-docs` also replaces the results in
 * docs/benchmarks.md and the headline table of README.md, `--profile` has every server write a CPU
 * profile and prints where the time went. A missed throughput target has its server profiled
 * afterwards, and the report shows where its time goes.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkReachable, cleanupAll, type StoreName } from "./backends.ts";
import { configFromEnv, type Scenario } from "./config.ts";
import { chooseGenerator } from "./generator.ts";
import { repoDir, stopAll } from "./processes.ts";
import { isMainThreadProfile, summarizeProfile } from "./profile-summary.ts";
import { formatCount, Progress } from "./progress.ts";
import { type BenchResults, commit, evaluateTargets, machine, toHeadline, toMarkdown } from "./report.ts";
import type { ScenarioContext } from "./scenarios/context.ts";
import { measureCrossInstance } from "./scenarios/cross-instance.ts";
import { measureFanout } from "./scenarios/fanout.ts";
import { type FollowersTarget, measureFollowers } from "./scenarios/followers.ts";
import { measureObservability } from "./scenarios/observability.ts";
import { profileMissed } from "./scenarios/profile-missed.ts";
import { measureStreamGrowth } from "./scenarios/stream-growth.ts";
import { measureTakeover } from "./scenarios/takeover.ts";
import { measureThroughput } from "./scenarios/throughput.ts";

const resultsDir = path.join(repoDir, "bench-results");
const docsFile = path.join(repoDir, "docs", "benchmarks.md");
const DOCS_START = "<!-- bench:start -->";
const DOCS_END = "<!-- bench:end -->";
const readmeFile = path.join(repoDir, "README.md");
const HEADLINE_START = "<!-- bench-headline:start -->";
const HEADLINE_END = "<!-- bench-headline:end -->";

interface Step {
  scenario: Scenario;
  label: string;
  run(context: ScenarioContext): Promise<string>;
}

const config = configFromEnv();
const generator = chooseGenerator(config);
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const profileRoot = path.join(resultsDir, "profiles", stamp);
const results: Omit<BenchResults, "targets"> = {
  date: new Date().toISOString(),
  machine: machine(),
  commit: commit(repoDir),
  settings: {
    seconds: config.seconds,
    rounds: config.rounds,
    warmupSeconds: config.warmupSeconds,
    clients: config.clients,
    generator,
    streamSizes: config.streamSizes,
    streamEvents: config.streamEvents,
    crossEvents: config.crossEvents,
    followers: config.followers,
    fanoutEvents: config.fanoutEvents,
    fanoutWarmupEvents: config.fanoutWarmupEvents,
    takeoverSteps: config.takeoverSteps,
    takeoverEvents: config.takeoverEvents,
  },
  throughput: [],
  streams: [],
  cross: [],
  followers: [],
  fanout: [],
  takeover: [],
  profiles: [],
};

const stores = config.stores;
const haStores = stores.filter((store): store is Exclude<StoreName, "memory"> => store !== "memory");
const steps: Step[] = [
  {
    scenario: "throughput" as const,
    label: "throughput",
    run: async (context: ScenarioContext) => {
      const rows = await measureThroughput(context);
      results.throughput.push(...rows);
      return rows.map((row) => `${row.target} ${formatCount(row.perSecond)} runs/s`).join(", ");
    },
  },
  ...stores.map((store) => ({
    scenario: "streams" as const,
    label: `stream cost ${store}`,
    run: async (context: ScenarioContext) => {
      const row = await measureStreamGrowth(store, context);
      results.streams.push(row);
      return `${row.sizes.map((size) => `N=${size.n}: ${size.usPerEvent.toFixed(1)} µs/event`).join(", ")}; ratio ${row.ratio.toFixed(2)}`;
    },
  })),
  ...haStores.map((store) => ({
    scenario: "cross" as const,
    label: `cross-instance ${store}`,
    run: async (context: ScenarioContext) => {
      const row = await measureCrossInstance(store, context);
      results.cross.push(row);
      return `${row.events} events, p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms`;
    },
  })),
  ...(["ceiling", ...stores] as FollowersTarget[]).map((target) => ({
    scenario: "followers" as const,
    label: `followers ${target}`,
    run: async (context: ScenarioContext) => {
      const row = await measureFollowers(target, context);
      results.followers.push(row);
      return (
        `${row.rssKbPerStream.toFixed(1)} KB RSS and ${row.heapKbPerStream.toFixed(1)} KB heap per stream` +
        (row.storeConnections === undefined ? "" : `, ${row.storeConnections} store connections`)
      );
    },
  })),
  ...haStores.map((store) => ({
    scenario: "fanout" as const,
    label: `fan-out ${store}`,
    run: async (context: ScenarioContext) => {
      const row = await measureFanout(store, context);
      results.fanout.push(row);
      return (
        `1 follower: p99 ${row.one.p99Ms.toFixed(1)} ms, ${row.one.storeCallsPerSecond.toFixed(1)} store calls/s on B; ` +
        (row.cold
          ? `first run to ${formatCount(row.cold.followers)} (B cold): p99 ${row.cold.p99Ms.toFixed(1)} ms; `
          : "") +
        `${formatCount(row.many.followers)}: p99 ${row.many.p99Ms.toFixed(1)} ms, ${row.many.storeCallsPerSecond.toFixed(1)} store calls/s`
      );
    },
  })),
  ...haStores.map((store) => ({
    scenario: "takeover" as const,
    label: `takeover ${store}`,
    run: async (context: ScenarioContext) => {
      const row = await measureTakeover(store, context);
      results.takeover.push(row);
      return (
        `${row.steps} steps, ${row.events} events: adoption to live ${row.adoptionToLiveMs.toFixed(0)} ms; ` +
        `a step ${row.usPerStep.toFixed(0)} µs, ${row.writesPerStep.toFixed(2)} store writes`
      );
    },
  })),
  {
    scenario: "observability" as const,
    label: "observability cost",
    run: async (context: ScenarioContext) => {
      const row = await measureObservability(context);
      results.observability = row;
      return row.rows.map((r) => `${r.variant} ${formatCount(r.perSecond)} runs/s`).join(", ");
    },
  },
].filter((step) => config.scenarios.includes(step.scenario));

/** Replaces what lies between `startMarker` and `endMarker` in `file`, keeping the rest. */
async function replaceBetween(file: string, startMarker: string, endMarker: string, markdown: string): Promise<void> {
  const current = await readFile(file, "utf8");
  const start = current.indexOf(startMarker);
  const end = current.indexOf(endMarker);
  if (start === -1 || end < start) throw new Error(`${file} lacks the ${startMarker} … ${endMarker} markers`);
  await writeFile(
    file,
    `${current.slice(0, start + startMarker.length)}\n\n${markdown.trim()}\n\n${current.slice(end)}`,
  );
}

/** The generated part of docs/benchmarks.md, and the headline table of README.md. */
async function updateDocs(results: BenchResults, markdown: string): Promise<void> {
  await replaceBetween(docsFile, DOCS_START, DOCS_END, markdown);
  await replaceBetween(readmeFile, HEADLINE_START, HEADLINE_END, toHeadline(results));
  const lines = (await readFile(readmeFile, "utf8")).split("\n").length;
  if (lines >= 200) console.error(`[bench] README.md has ${lines} lines now: it must stay under 200`);
}

async function printProfiles(): Promise<void> {
  const steps = await readdir(profileRoot).catch(() => [] as string[]);
  for (const step of steps.sort()) {
    for (const file of await readdir(path.join(profileRoot, step))) {
      // The other threads are tsx's module loader: start-up only.
      if (!isMainThreadProfile(file)) continue;
      console.log(`\n## CPU profile: ${step} (${path.relative(repoDir, path.join(profileRoot, step, file))})\n`);
      console.log(await summarizeProfile(path.join(profileRoot, step, file)));
    }
  }
}

async function main(): Promise<void> {
  await checkReachable(config.scenarios.length > 0 ? stores : []);
  const [load] = os.loadavg();
  if (load! > os.cpus().length / 2) {
    console.error(
      `[bench] the load average is ${load!.toFixed(2)} on ${os.cpus().length} cores: other work shares the machine, so expect lower and noisier numbers`,
    );
  }
  const progress = new Progress(steps.length);
  const context: ScenarioContext = {
    config,
    progress,
    generator,
    profileDir: (step) => (config.profile ? path.join(profileRoot, step) : undefined),
    missedProfileDir: config.profileMissed ? path.join(profileRoot, "missed") : undefined,
  };
  const started = performance.now();
  // A step that fails is reported and left out; the others still run, so that one broken
  // measurement does not throw away the rest of a ten-minute run. The docs are then left alone.
  const failed: string[] = [];
  for (const step of steps) {
    progress.step(step.label);
    try {
      progress.done(await step.run(context));
    } catch (error) {
      if (interrupted) throw error;
      failed.push(step.label);
      progress.done(`FAILED: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
      console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    }
  }
  results.machine.load.end = Math.round(os.loadavg()[0]! * 100) / 100;
  const targets = evaluateTargets(results);
  if (config.profileMissed && targets.some((target) => !target.met && target.profile !== undefined)) {
    progress.total++;
    progress.step("profiles of the throughput targets not met");
    try {
      results.profiles = await profileMissed(targets, context, context.missedProfileDir!);
      progress.done(results.profiles.map((profile) => profile.file).join(", "));
    } catch (error) {
      if (interrupted) throw error;
      failed.push("profiles");
      progress.done(`FAILED: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
    }
  }
  const full: BenchResults = { ...results, targets };
  const markdown = toMarkdown(full);
  await mkdir(resultsDir, { recursive: true });
  const base = path.join(resultsDir, `bench-${stamp}`);
  await writeFile(`${base}.json`, `${JSON.stringify(full, null, 2)}\n`);
  await writeFile(`${base}.md`, markdown);
  await writeFile(path.join(resultsDir, "latest.json"), `${JSON.stringify(full, null, 2)}\n`);
  await writeFile(path.join(resultsDir, "latest.md"), markdown);
  console.log(markdown);
  console.error(
    `[bench] done in ${((performance.now() - started) / 1000).toFixed(0)} s; wrote ${path.relative(repoDir, base)}.json and .md`,
  );
  if (failed.length > 0) {
    console.error(`[bench] failed: ${failed.join(", ")}${config.updateDocs ? "; the docs were not updated" : ""}`);
    process.exitCode = 1;
  } else if (config.updateDocs) {
    await updateDocs(full, markdown);
    console.error(`[bench] updated ${path.relative(repoDir, docsFile)} and README.md's headline table`);
  }
  if (config.profile) await printProfiles();
}

// Ctrl-C: stop the servers and remove the namespaces before leaving.
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n[bench] ${signal}: stopping servers and removing the bench's data`);
    void stopAll()
      .then(cleanupAll)
      .finally(() => process.exit(130));
  });
}

main().catch((error: unknown) => {
  // The measurement broke because the servers were stopped: the signal handler exits.
  if (interrupted) return;
  console.error(`\n[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});

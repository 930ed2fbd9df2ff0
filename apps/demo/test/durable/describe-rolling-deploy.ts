/**
 * A rolling deploy on one backend: three demo instances behind nginx carry 100 durable runs, half
 * of them streaming recorded steps, half awaiting a person; every instance is restarted in turn
 * (two drain on SIGTERM with a short deadline, one is killed). Every run completes after its
 * resume, with a gapless log that repeats nothing.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { Backend } from "../ha/backends.ts";
import { type Balancer, type Instance, startInstance, startNginx, stopInstances } from "../support/cluster.ts";
import {
  createRun,
  eventLog,
  expectCleanLog,
  expectEveryStepOnce,
  expectStepsRanOnce,
  LEASE_MS,
  partTexts,
  resumeRun,
  stepLogDir,
  stepNames,
  stepsRan,
  waitForRunsToEnd,
} from "./harness.ts";

const RUNS = 100;
/** Long enough (about 8 s) that the streaming runs live through the restarts. */
const STEPS = 16;
const STEP_MS = 500;
/** Instance 1 dies; the others drain. */
const RESTARTS: NodeJS.Signals[] = ["SIGTERM", "SIGKILL", "SIGTERM"];

/** Runs `work` on every item, at most `width` at once; results in order. */
async function inBatches<T, R>(items: T[], width: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < items.length; start += width)
    results.push(...(await Promise.all(items.slice(start, start + width).map((item, i) => work(item, start + i)))));
  return results;
}

export function describeRollingDeploy(makeBackend: () => Backend): void {
  const backend = makeBackend();
  let steps: Awaited<ReturnType<typeof stepLogDir>>;
  let env: Record<string, string>;
  let instances: Instance[] = [];
  let balancer: Balancer;

  beforeAll(async () => {
    steps = await stepLogDir();
    env = {
      ...backend.env,
      ACP_LEASE_MS: String(LEASE_MS),
      ACP_DRAIN_MS: "1000",
      ACP_DEMO_STEP_LOG: steps.dir,
    };
    instances = await Promise.all([startInstance(env), startInstance(env), startInstance(env)]);
    balancer = await startNginx(instances.map((instance) => instance.url));
  });

  afterAll(async () => {
    await balancer?.stop();
    await stopInstances(instances);
    await backend.cleanup();
    await steps?.remove();
  });

  describe(`durable runs on ${backend.name}: a rolling deploy of three instances behind nginx`, () => {
    it(`completes ${RUNS} durable runs (half streaming steps, half awaiting) through a restart of every instance, each log gapless without duplicates`, async () => {
      onTestFailed(() => {
        for (const [index, instance] of instances.entries())
          console.error(`instance ${index} (${instance.url}), last lines:\n${instance.output().slice(-4000)}`);
      });
      const half = RUNS / 2;
      const indexes = Array.from({ length: half }, (_, index) => index);
      const streaming = await inBatches(indexes, 25, () =>
        createRun(balancer.url, "durable-steps", `${STEPS} steps delay=${STEP_MS}`, "async"),
      );
      const awaiting = await inBatches(indexes, 25, (index) =>
        createRun(balancer.url, "durable-approval", `change ${index}`, "sync"),
      );
      expect(awaiting.map((run) => run.status)).toEqual(awaiting.map(() => "awaiting"));

      // Each instance in turn: stopped, started again on its port (nginx's upstream), up before the next.
      for (const [index, signal] of RESTARTS.entries()) {
        const old = instances[index]!;
        old.kill(signal);
        const code = await old.exited;
        if (signal === "SIGTERM") expect(code, old.output().slice(-3000)).toBe(0);
        instances[index] = await startInstance(env, old.port);
      }

      const resumed = await inBatches(awaiting, 25, (run) => resumeRun(balancer.url, run.run_id, "yes", "async"));
      expect(resumed.map((answer) => answer.status)).toEqual(resumed.map(() => 202));

      const finished = await waitForRunsToEnd(
        balancer.url,
        [...streaming, ...awaiting].map((run) => run.run_id),
        30_000,
      );
      expect(finished.filter((run) => run.status !== "completed").map((run) => `${run.run_id} ${run.status}`)).toEqual(
        [],
      );

      let takeovers = 0;
      await inBatches(streaming, 10, async (run) => {
        const frames = await eventLog(balancer.url, run.run_id);
        expectCleanLog(frames, run.run_id);
        const sent = expectEveryStepOnce(frames, STEPS, run.run_id);
        const attempts = sent.at(-1)!.attempt;
        takeovers += attempts - 1;
        expectStepsRanOnce(await stepsRan(steps.dir, run.run_id), stepNames(STEPS), attempts - 1, run.run_id);
      });
      await inBatches(awaiting, 10, async (run, index) => {
        const frames = await eventLog(balancer.url, run.run_id);
        expectCleanLog(frames, run.run_id);
        const texts = partTexts(frames);
        expect(texts.filter((text) => text.startsWith(`Plan for change ${index},`))).toHaveLength(1);
        expect(texts.at(-1)).toMatch(new RegExp(`^Approved\\. Done: change ${index}\\. \\(attempt \\d+\\)$`));
        const ran = await stepsRan(steps.dir, run.run_id);
        expect(ran.map((line) => line.step)).toEqual(["plan", "act"]);
      });
      // The restarts happened while the streaming runs ran: most of them changed hands.
      expect(takeovers).toBeGreaterThan(0);
    }, 150_000);
  });
}

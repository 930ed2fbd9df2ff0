/**
 * Durable runs on one backend, two real instances: B stays up the whole time; each test starts
 * its own instance A, gives it a durable run and loses it (SIGKILL, SIGTERM, SIGSTOP). B takes
 * the run over and completes it: the steps A finished are not run again, the parts A sent are not
 * sent again, and nothing A writes after losing the run lands.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import type { Backend } from "../ha/backends.ts";
import { type Instance, startInstance, stopInstances } from "../support/cluster.ts";
import {
  ADOPTION_SLACK_MS,
  createRun,
  type EventJson,
  ended,
  eventLog,
  expectCleanLog,
  expectEveryStepOnce,
  expectStepsRanOnce,
  getRun,
  LEASE_MS,
  partTexts,
  resumeRun,
  sleep,
  stepLogDir,
  stepNames,
  stepsRan,
  storedEvents,
  until,
  waitForRun,
} from "./harness.ts";

const STEPS = 10;
const STEP_MS = 300;
/** The longest a test waits for a run to end once its new owner has it. */
const FINISH_MS = 20_000;

const parts = (events: EventJson[]): string[] =>
  events.filter((event) => event.type === "message.part").map((event) => event.part?.content ?? "");

/** Resolves once `count` step parts of the run are stored (read through `url`). */
function stepsDone(url: string, runId: string, count: number): Promise<true> {
  return until(
    `${count} steps of ${runId} done`,
    async () => (parts(await storedEvents(url, runId)).length >= count ? true : undefined),
    15_000,
  );
}

/** Resolves with the time at which a part of the run's second attempt is first stored. */
function secondAttemptSeen(url: string, runId: string, ms: number): Promise<number> {
  return until(
    `a part of attempt 2 of ${runId}`,
    async () =>
      parts(await storedEvents(url, runId)).some((text) => text.includes("(attempt 2)")) ? Date.now() : undefined,
    ms,
  );
}

export function describeDurableRuns(makeBackend: () => Backend): void {
  const backend = makeBackend();
  let steps: Awaited<ReturnType<typeof stepLogDir>>;
  let env: Record<string, string>;
  let b: Instance;
  const owners: Instance[] = [];

  /** A fresh instance A for one test, stopped after all of them. */
  async function owner(extra: Record<string, string> = {}): Promise<Instance> {
    const instance = await startInstance({ ...env, ...extra });
    owners.push(instance);
    return instance;
  }

  beforeAll(async () => {
    steps = await stepLogDir();
    env = {
      ...backend.env,
      ACP_LEASE_MS: String(LEASE_MS),
      ACP_DRAIN_MS: "3000",
      ACP_DEMO_STEP_LOG: steps.dir,
    };
    b = await startInstance(env);
  });

  afterAll(async () => {
    // A paused instance handles no SIGTERM: wake it first.
    for (const instance of owners) if (instance.child.exitCode === null) instance.kill("SIGCONT");
    await stopInstances([b, ...owners].filter(Boolean));
    await backend.cleanup();
    await steps?.remove();
  });

  describe(`durable runs on ${backend.name}: another instance takes over`, () => {
    beforeEach(() => {
      onTestFailed(() => {
        for (const [name, instance] of [["B", b] as const, ...owners.map((a) => ["A", a] as const)])
          console.error(`instance ${name} (${instance.url}), last lines:\n${instance.output().slice(-3000)}`);
      });
    });

    it("adopts a durable run killed (SIGKILL) after 3 of 10 steps within the lease and completes it: each step ran once, each part sent once, attempt 2; a plain run still fails", async () => {
      const a = await owner();
      const run = await createRun(a.url, "durable-steps", `${STEPS} steps delay=${STEP_MS}`, "async");
      const plain = await createRun(a.url, "slow", "ticks=600", "async");
      await stepsDone(b.url, run.run_id, 3);
      a.kill("SIGKILL");
      const killedAt = Date.now();
      await a.exited;

      // The new owner's first part comes after the adoption and the step in flight, run again.
      const bound = LEASE_MS + ADOPTION_SLACK_MS + STEP_MS;
      const adoptedAt = await secondAttemptSeen(b.url, run.run_id, bound + 10_000);
      expect(adoptedAt - killedAt, "ms from the kill to the new owner's first part").toBeLessThan(bound);

      const done = await waitForRun(b.url, run.run_id, ended, FINISH_MS);
      expect(done.status).toBe("completed");
      const frames = await eventLog(b.url, run.run_id);
      expectCleanLog(frames, run.run_id);
      const sent = expectEveryStepOnce(frames, STEPS, run.run_id);
      expect(sent.filter((part) => part.attempt === 1).length).toBeGreaterThanOrEqual(3);
      expect(sent.at(-1)?.attempt, "ctx.attempt after one takeover").toBe(2);
      expect(done.output.flatMap((message) => message.parts.map((part) => part.content)).join("")).toBe(
        partTexts(frames).join(""),
      );

      const ran = await stepsRan(steps.dir, run.run_id);
      expectStepsRanOnce(ran, stepNames(STEPS), 1, run.run_id);
      expect(ran.filter((line) => line.pid === a.child.pid).every((line) => line.attempt === 1)).toBe(true);
      expect(ran.filter((line) => line.pid !== a.child.pid).every((line) => line.attempt === 2)).toBe(true);

      // Not durable: failed once the lease ran out, as before.
      const failed = await waitForRun(b.url, plain.run_id, ended, LEASE_MS + 8000);
      expect(failed.status).toBe("failed");
      expect(failed.error?.code).toBe("server_error");
    }, 60_000);

    it("hands the durable runs of a draining instance (SIGTERM) to the other: an awaiting one completes after a resume through it, a running one after the drain deadline", async () => {
      const a = await owner({ ACP_DRAIN_MS: "1500" });
      const awaiting = await createRun(a.url, "durable-approval", "the deploy", "sync");
      expect(awaiting.status).toBe("awaiting");
      const running = await createRun(a.url, "durable-steps", "8 steps delay=500", "async");
      await stepsDone(b.url, running.run_id, 1);
      a.kill("SIGTERM");
      expect(await a.exited).toBe(0);

      const resumed = await resumeRun(b.url, awaiting.run_id, "yes", "sync");
      expect(resumed.status, JSON.stringify(resumed.run)).toBe(200);
      expect(resumed.run.status).toBe("completed");
      expect(resumed.run.output.at(-1)?.parts[0]?.content).toBe("Approved. Done: the deploy. (attempt 2)");
      const approvalLog = await eventLog(b.url, awaiting.run_id);
      expectCleanLog(approvalLog, awaiting.run_id);
      expect(partTexts(approvalLog).filter((text) => text.startsWith("Plan for the deploy"))).toHaveLength(1);
      const planned = await stepsRan(steps.dir, awaiting.run_id);
      expect(planned.map(({ step, attempt }) => `${step}@${attempt}`)).toEqual(["plan@1", "act@2"]);

      const done = await waitForRun(b.url, running.run_id, ended, LEASE_MS + FINISH_MS);
      expect(done.status).toBe("completed");
      const frames = await eventLog(b.url, running.run_id);
      expectCleanLog(frames, running.run_id);
      const sent = expectEveryStepOnce(frames, 8, running.run_id);
      expect(sent.at(-1)?.attempt).toBe(2);
      expectStepsRanOnce(await stepsRan(steps.dir, running.run_id), stepNames(8), 1, running.run_id);
    }, 60_000);

    it("fences an owner paused (SIGSTOP) past its lease: the run is adopted, and once resumed (SIGCONT) none of the old owner's writes land; the run completes once", async () => {
      const a = await owner();
      const run = await createRun(a.url, "durable-steps", `${STEPS} steps delay=${STEP_MS}`, "async");
      await stepsDone(b.url, run.run_id, 3);
      a.kill("SIGSTOP");
      await secondAttemptSeen(b.url, run.run_id, LEASE_MS + ADOPTION_SLACK_MS + 10_000);
      // Wake the old owner while the new one is still at work: its step in flight ends, its writes are refused.
      a.kill("SIGCONT");

      const done = await waitForRun(b.url, run.run_id, ended, FINISH_MS);
      expect(done.status).toBe("completed");
      // Time for whatever the old owner still tries to write.
      await sleep(2 * LEASE_MS);
      const frames = await eventLog(b.url, run.run_id);
      expectCleanLog(frames, run.run_id);
      const sent = expectEveryStepOnce(frames, STEPS, run.run_id);
      expect(sent.at(-1)?.attempt).toBe(2);
      expect(await storedEvents(b.url, run.run_id)).toHaveLength(frames.length);
      expect((await getRun(b.url, run.run_id)).status).toBe("completed");
      // The old owner lives on and serves, with nothing more to do for this run.
      expect((await fetch(`${a.url}/ping`)).status).toBe(200);
      expect((await getRun(a.url, run.run_id)).status).toBe("completed");
      const ran = await stepsRan(steps.dir, run.run_id);
      expectStepsRanOnce(ran, stepNames(STEPS), 1, run.run_id);
      expect(ran.filter((line) => line.pid === a.child.pid).every((line) => line.attempt === 1)).toBe(true);
    }, 60_000);
  });
}

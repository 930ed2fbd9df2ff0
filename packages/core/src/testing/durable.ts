/**
 * Conformance: what durable runs need. The ownership epoch fences a former owner's appends and
 * steps; steps are recorded once per index and read back in order.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RunStatus } from "../models.ts";
import type { StoredRun } from "../store.ts";
import { label, labelOf, newRun, runEvent, stepRecord, textMessage, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const TERMINAL: RunStatus[] = ["completed", "failed", "cancelled"];
const TIMEOUT_MS = 20_000;

/** A new durable run at epoch 1, as the runtime creates one. */
function durableRun(status: RunStatus = "in-progress"): StoredRun {
  return { ...newRun(status), epoch: 1, durable: { input: [textMessage("do it")], attempt: 1 } };
}

/** The record after another instance adopted it: new owner, next epoch, next attempt. */
function takenOver(record: StoredRun, owner = `instance-${randomUUID()}`): StoredRun {
  const next = structuredClone(record);
  next.owner = owner;
  next.epoch = (record.epoch ?? 1) + 1;
  if (next.durable) next.durable.attempt += 1;
  return next;
}

export function describeDurable(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("durable runs", () => {
    it("keeps epoch and durable through createRun and updateRun, and adds neither to other runs", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = {
          ...durableRun(),
          durable: {
            input: [textMessage("first"), textMessage("second")],
            attempt: 1,
            historyStoreId: "history-1",
            historyUrls: ["http://localhost/resources/a", "http://localhost/resources/b"],
          },
        };
        await store.createRun(record, []);
        assert.deepEqual(await peer.getRun(record.run.run_id), record, "createRun lost epoch or durable");
        const adopted = takenOver(record);
        const result = await peer.updateRun(record.run.run_id, 1, adopted, []);
        assert.equal(result.ok, true);
        const stored = await store.getRun(record.run.run_id);
        assert.equal(stored?.epoch, 2, "updateRun lost the epoch");
        assert.deepEqual(stored?.durable, adopted.durable, "updateRun lost durable");
        assert.deepEqual(stored, { ...adopted, version: 2 });

        const plain = newRun();
        await store.createRun(plain, []);
        const read = (await peer.getRun(plain.run.run_id)) ?? {};
        assert.equal("epoch" in read, false, "a run without an epoch got one");
        assert.equal("durable" in read, false, "a run that is not durable got durable state");
      });
    });

    it("appends with the stored epoch, and with epoch 1 when the record has none", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = durableRun();
        await store.createRun(record, [runEvent(record)]);
        assert.equal(await store.appendEvents(record.run.run_id, [label(1)], 1), 2);
        assert.equal(await peer.appendEvents(record.run.run_id, [label(2), label(3)], 1), 4);
        assert.equal(await peer.appendEvents(record.run.run_id, [label(4)]), 5, "an append without epoch was fenced");

        const plain = newRun("in-progress");
        await store.createRun(plain, []);
        assert.equal(await peer.appendEvents(plain.run.run_id, [label(1)], 1), 1, "absent epoch is not epoch 1");
        assert.equal(await peer.appendEvents(plain.run.run_id, [label(2)], 2), null, "absent epoch matched epoch 2");
      });
    });

    it("refuses an append of a former owner after a takeover, appending nothing", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = durableRun();
        await store.createRun(record, [runEvent(record)]);
        assert.equal(await store.appendEvents(record.run.run_id, [label("old owner")], 1), 2);
        const adopted = await peer.updateRun(record.run.run_id, 1, takenOver(record), [label("takeover")]);
        assert.equal(adopted.ok, true);

        assert.equal(await store.appendEvents(record.run.run_id, [label("fenced")], 1), null, "a stale epoch appended");
        assert.equal(await peer.appendEvents(record.run.run_id, [label("fenced")], 3), null, "a future epoch appended");
        assert.equal(await peer.appendEvents(record.run.run_id, [label("new owner")], 2), 4);
        const log = await store.readEvents(record.run.run_id, 0);
        assert.deepEqual(
          log.map((stored) => labelOf(stored.event) ?? stored.event.type),
          ["run.in-progress", "old owner", "takeover", "new owner"],
        );
      });
    });

    it(
      "never lets a former owner's append follow the takeover when they race",
      async () => {
        await withStores(target, async ({ store, peer }) => {
          const races = Array.from({ length: 10 }, async () => {
            const record = durableRun();
            await store.createRun(record, []);
            const append = (i: number): Promise<number | null> =>
              (i % 2 === 0 ? store : peer).appendEvents(record.run.run_id, [label(i)], 1);
            const before = [0, 1, 2].map(append);
            const takeover = peer.updateRun(record.run.run_id, 1, takenOver(record), [label("takeover")]);
            const after = [3, 4, 5].map(append);
            const [update, ...appended] = await Promise.all([takeover, ...before, ...after]);
            assert.equal(update.ok, true);
            const labels = (await store.readEvents(record.run.run_id, 0)).map((stored) => labelOf(stored.event));
            assert.equal(labels.at(-1), "takeover", "a fenced append landed after the takeover");
            assert.equal(
              labels.length,
              1 + appended.filter((seq) => seq !== null).length,
              "an append that returned null wrote events, or one that returned a seq did not",
            );
          });
          await Promise.all(races);
        });
      },
      TIMEOUT_MS,
    );

    it("records steps and reads them back in index order, through either store", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = durableRun();
        await store.createRun(record, []);
        const runId = record.run.run_id;
        assert.deepEqual(await store.readSteps(runId), [], "a run without steps has steps");
        const steps = [
          stepRecord(0, "plan", { items: [1, 2, 3] }),
          { index: 1, name: "charge", error: "card declined" },
          stepRecord(2, "acp:resume", null),
          stepRecord(3, "quote", "72 €"),
        ];
        // Recorded out of order: the store orders them by index.
        for (const [i, step] of [steps[2]!, steps[0]!, steps[3]!, steps[1]!].entries())
          assert.equal(await (i % 2 === 0 ? store : peer).recordStep(runId, 1, step), true, `step ${step.index}`);
        assert.deepEqual(await peer.readSteps(runId), steps);
        assert.deepEqual(await store.readSteps(runId), steps);
      });
    });

    it("records a step of a run without an epoch at epoch 1", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun("awaiting");
        await store.createRun(record, []);
        assert.equal(await store.recordStep(record.run.run_id, 2, stepRecord(0, "a", 1)), false);
        assert.equal(await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1)), true);
        assert.deepEqual(await store.readSteps(record.run.run_id), [stepRecord(0, "a", 1)]);
      });
    });

    it("never replaces a recorded step: a second one at its index returns false", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = durableRun();
        await store.createRun(record, []);
        const runId = record.run.run_id;
        assert.equal(await store.recordStep(runId, 1, stepRecord(0, "first", "kept")), true);
        assert.equal(await peer.recordStep(runId, 1, stepRecord(0, "second", "lost")), false);
        assert.equal(await store.recordStep(runId, 1, { index: 0, name: "first", error: "lost" }), false);
        assert.deepEqual(await peer.readSteps(runId), [stepRecord(0, "first", "kept")]);

        // Concurrent writers of one index: exactly one wins.
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 === 0 ? store : peer).recordStep(runId, 1, stepRecord(1, `writer-${i}`, i)),
          ),
        );
        const winners = results.flatMap((stored, i) => (stored ? [i] : []));
        assert.equal(winners.length, 1, `${winners.length} writers stored step 1`);
        assert.deepEqual((await store.readSteps(runId))[1], stepRecord(1, `writer-${winners[0]}`, winners[0]));
      });
    });

    it("refuses a step of a former owner after a takeover, and takes the new owner's", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = durableRun();
        await store.createRun(record, []);
        const runId = record.run.run_id;
        assert.equal(await store.recordStep(runId, 1, stepRecord(0, "a", 0)), true);
        assert.equal((await peer.updateRun(runId, 1, takenOver(record), [])).ok, true);
        assert.equal(await store.recordStep(runId, 1, stepRecord(1, "b", "old")), false, "a stale epoch recorded");
        assert.equal(await store.recordStep(runId, 3, stepRecord(1, "b", "future")), false, "a future epoch recorded");
        assert.equal(await peer.recordStep(runId, 2, stepRecord(1, "b", "new")), true);
        assert.deepEqual(await store.readSteps(runId), [stepRecord(0, "a", 0), stepRecord(1, "b", "new")]);
      });
    });

    it("returns false for an unknown run, and reads [] for it", async () => {
      await withStores(target, async ({ store }) => {
        const runId = randomUUID();
        assert.equal(await store.recordStep(runId, 1, stepRecord(0, "a", 1)), false);
        assert.deepEqual(await store.readSteps(runId), []);
        assert.equal(await store.getRun(runId), undefined, "recordStep created a run");
      });
    });

    for (const status of TERMINAL) {
      it(`returns false, recording nothing, once the run is ${status}, and still reads the steps`, async () => {
        await withStores(target, async ({ store, peer }) => {
          const record = durableRun();
          await store.createRun(record, []);
          const runId = record.run.run_id;
          await store.recordStep(runId, 1, stepRecord(0, "a", 1));
          assert.equal((await store.updateRun(runId, 1, withStatus(record, status), [])).ok, true);
          assert.equal(await peer.recordStep(runId, 1, stepRecord(1, "late", 2)), false);
          assert.deepEqual(await peer.readSteps(runId), [stepRecord(0, "a", 1)]);
        });
      });
    }

    it(
      "reads back 1,000 steps in order",
      async () => {
        await withStores(target, async ({ store, peer }) => {
          const record = durableRun();
          await store.createRun(record, []);
          const steps = Array.from({ length: 1_000 }, (_, i) =>
            stepRecord(i, `step-${i % 7}`, { i, text: "x".repeat(i % 50) }),
          );
          for (let start = 0; start < steps.length; start += 100) {
            const stored = await Promise.all(
              steps.slice(start, start + 100).map((step) => store.recordStep(record.run.run_id, 1, step)),
            );
            assert.ok(stored.every(Boolean), "a step was not stored");
          }
          assert.deepEqual(await peer.readSteps(record.run.run_id), steps);
        });
      },
      TIMEOUT_MS,
    );

    it("keeps its own copies of steps", async () => {
      await withStores(target, async ({ store }) => {
        const record = durableRun();
        await store.createRun(record, []);
        const step = stepRecord(0, "a", "original");
        await store.recordStep(record.run.run_id, 1, step);
        step.name = "changed";
        const [read] = await store.readSteps(record.run.run_id);
        assert.ok(read, "the step was not stored");
        read.result = "changed";
        assert.deepEqual(await store.readSteps(record.run.run_id), [stepRecord(0, "a", "original")]);
      });
    });
  });
}

/** Conformance: the append-only event log of a run. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RunStatus } from "../models.ts";
import { label, labelOf, newRun, runEvent, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const TERMINAL: RunStatus[] = ["completed", "failed", "cancelled"];

export function describeEvents(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("events", () => {
    it("numbers events 1..n without gaps and returns the last seq of each append", async () => {
      await withStores(target, async ({ store, peer }) => {
        const { run } = newRun("in-progress");
        await store.createRun({ run, version: 1, owner: "a" }, []);
        assert.equal(await store.appendEvents(run.run_id, [label(1), label(2), label(3)]), 3);
        assert.equal(await peer.appendEvents(run.run_id, [label(4)]), 4);
        assert.equal(await store.appendEvents(run.run_id, [label(5), label(6)]), 6);
        const log = await peer.readEvents(run.run_id, 0);
        assert.deepEqual(
          log.map((stored) => [stored.seq, labelOf(stored.event)]),
          [1, 2, 3, 4, 5, 6].map((n) => [n, n]),
        );
      });
    });

    it("reads events after a seq, at most limit of them", async () => {
      await withStores(target, async ({ store }) => {
        const { run } = newRun("in-progress");
        await store.createRun({ run, version: 1, owner: "a" }, [label(1), label(2), label(3), label(4), label(5)]);
        const seqs = async (after: number, limit?: number): Promise<number[]> =>
          (await store.readEvents(run.run_id, after, limit)).map((stored) => stored.seq);
        assert.deepEqual(await seqs(0), [1, 2, 3, 4, 5]);
        assert.deepEqual(await seqs(2), [3, 4, 5]);
        assert.deepEqual(await seqs(2, 2), [3, 4]);
        assert.deepEqual(await seqs(0, 1), [1]);
        assert.deepEqual(await seqs(3, 10), [4, 5]);
        assert.deepEqual(await seqs(5), []);
        assert.deepEqual(await seqs(9), []);
        const [third] = await store.readEvents(run.run_id, 2, 1);
        assert.deepEqual(third, { seq: 3, event: label(3) });
      });
    });

    it("returns null for an unknown run and reads [] for it", async () => {
      await withStores(target, async ({ store }) => {
        const runId = randomUUID();
        assert.equal(await store.appendEvents(runId, [label(1)]), null);
        assert.deepEqual(await store.readEvents(runId, 0), []);
        assert.equal(await store.getRun(runId), undefined);
      });
    });

    for (const status of TERMINAL) {
      it(`returns null, appending nothing, once the run is ${status}`, async () => {
        await withStores(target, async ({ store, peer }) => {
          const record = newRun("in-progress");
          await store.createRun(record, [runEvent(record)]);
          const ended = withStatus(record, status);
          const result = await store.updateRun(record.run.run_id, 1, ended, [runEvent(ended)]);
          assert.equal(result.ok, true);
          assert.equal(await store.appendEvents(record.run.run_id, [label("late")]), null);
          assert.equal(await peer.appendEvents(record.run.run_id, [label("late")]), null);
          const log = await store.readEvents(record.run.run_id, 0);
          assert.deepEqual(
            log.map((stored) => stored.event.type),
            ["run.in-progress", `run.${status}`],
          );
        });
      });
    }

    it("returns null for a run created in a terminal status", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun("completed");
        await store.createRun(record, [runEvent(record)]);
        assert.equal(await store.appendEvents(record.run.run_id, [label("late")]), null);
        assert.equal((await store.readEvents(record.run.run_id, 0)).length, 1);
      });
    });

    it("never lets an event follow the terminal event when appends race the final update", async () => {
      await withStores(target, async ({ store, peer }) => {
        const races = Array.from({ length: 10 }, async () => {
          const record = newRun("in-progress");
          await store.createRun(record, [runEvent(record)]);
          const ended = withStatus(record, "completed");
          const append = (i: number): Promise<number | null> =>
            (i % 2 === 0 ? store : peer).appendEvents(record.run.run_id, [label(i)]);
          // The final update is issued between appends, so some come before it and some after.
          const before = [0, 1, 2].map(append);
          const finalUpdate = peer.updateRun(record.run.run_id, 1, ended, [runEvent(ended)]);
          const after = [3, 4, 5].map(append);
          const [update, ...appended] = await Promise.all([finalUpdate, ...before, ...after]);
          assert.equal(update.ok, true);
          const log = await store.readEvents(record.run.run_id, 0);
          assert.equal(log.at(-1)?.event.type, "run.completed", "an event follows the terminal event");
          const accepted = appended.filter((seq) => seq !== null).length;
          assert.equal(
            log.length,
            2 + accepted,
            "an append that returned null wrote events, or one that returned a seq did not",
          );
          assert.deepEqual(
            log.map((stored) => stored.seq),
            log.map((_, i) => i + 1),
          );
        });
        await Promise.all(races);
      });
    });

    it("keeps its own copies of appended events", async () => {
      await withStores(target, async ({ store }) => {
        const { run } = newRun("in-progress");
        await store.createRun({ run, version: 1, owner: "a" }, []);
        const event = label("original");
        await store.appendEvents(run.run_id, [event]);
        (event as { generic: Record<string, unknown> }).generic.label = "changed";
        assert.deepEqual(await store.readEvents(run.run_id, 0), [{ seq: 1, event: label("original") }]);
      });
    });
  });
}

/** Conformance: the heads of many runs in one call, the safety net behind change notifications. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RunHead } from "../store.ts";
import { label, newRun, runEvent, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

/** The heads as plain entries sorted by run id, for deepEqual. */
function entries(heads: Map<string, RunHead>): [string, RunHead][] {
  assert.ok(heads instanceof Map, "getRunHeads must resolve with a Map");
  return [...heads.entries()]
    .map(([id, head]): [string, RunHead] => [id, { version: head.version, ended: head.ended, lastSeq: head.lastSeq }])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function sorted(list: [string, RunHead][]): [string, RunHead][] {
  return [...list].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function describeHeads(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("getRunHeads", () => {
    it("answers an empty map for no ids and for unknown ids", async () => {
      await withStores(target, async ({ store }) => {
        assert.deepEqual(entries(await store.getRunHeads([])), []);
        assert.deepEqual(entries(await store.getRunHeads([randomUUID(), randomUUID()])), []);
      });
    });

    it("reads each run's version, end and last seq, as written through another instance", async () => {
      await withStores(target, async ({ store, peer }) => {
        const empty = newRun("in-progress");
        const busy = newRun("in-progress");
        const done = newRun("in-progress");
        await store.createRun(empty, []);
        await store.createRun(busy, [runEvent(busy), label(1)]);
        await store.createRun(done, [runEvent(done)]);
        const unknown = randomUUID();
        const ids = [empty.run.run_id, unknown, busy.run.run_id, done.run.run_id];
        assert.deepEqual(
          entries(await peer.getRunHeads(ids)),
          sorted([
            [empty.run.run_id, { version: 1, ended: false, lastSeq: 0 }],
            [busy.run.run_id, { version: 1, ended: false, lastSeq: 2 }],
            [done.run.run_id, { version: 1, ended: false, lastSeq: 1 }],
          ]),
        );
        // Every kind of write moves the head, whichever instance reads it next.
        assert.equal(await peer.appendEvents(busy.run.run_id, [label(2), label(3)]), 4);
        const awaiting = withStatus(empty, "awaiting");
        assert.equal((await peer.updateRun(empty.run.run_id, 1, awaiting, [])).ok, true);
        const ended = withStatus(done, "completed");
        assert.equal((await peer.updateRun(done.run.run_id, 1, ended, [label("end"), runEvent(ended)])).ok, true);
        assert.deepEqual(
          entries(await store.getRunHeads(ids)),
          sorted([
            [empty.run.run_id, { version: 2, ended: false, lastSeq: 0 }],
            [busy.run.run_id, { version: 1, ended: false, lastSeq: 4 }],
            [done.run.run_id, { version: 2, ended: true, lastSeq: 3 }],
          ]),
        );
      });
    });

    it("answers one entry for an id given twice, and leaves the ids it was given alone", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun("in-progress");
        await store.createRun(record, [runEvent(record)]);
        const ids = [record.run.run_id, record.run.run_id];
        const heads = await store.getRunHeads(ids);
        assert.deepEqual(entries(heads), [[record.run.run_id, { version: 1, ended: false, lastSeq: 1 }]]);
        assert.deepEqual(ids, [record.run.run_id, record.run.run_id]);
        // The answer is the caller's: changing it changes nothing stored.
        heads.get(record.run.run_id)!.version = 99;
        assert.equal((await store.getRunHeads([record.run.run_id])).get(record.run.run_id)?.version, 1);
      });
    });

    it("reads 500 runs in one call, each its own head", async () => {
      await withStores(target, async ({ store, peer }) => {
        const runs = Array.from({ length: 500 }, () => newRun("in-progress"));
        // A few at a time: stores on a network take many concurrent writes badly in a test.
        for (let i = 0; i < runs.length; i += 50) {
          await Promise.all(
            runs
              .slice(i, i + 50)
              .map((record, j) => store.createRun(record, Array.from({ length: (i + j) % 4 }, label))),
          );
        }
        const moved = runs.filter((_, i) => i % 7 === 0);
        for (const record of moved)
          assert.equal((await peer.updateRun(record.run.run_id, 1, record, [label("x")])).ok, true);
        const heads = await peer.getRunHeads(runs.map((record) => record.run.run_id));
        assert.equal(heads.size, runs.length);
        for (const [i, record] of runs.entries()) {
          const wasMoved = i % 7 === 0;
          assert.deepEqual(
            heads.get(record.run.run_id),
            { version: wasMoved ? 2 : 1, ended: false, lastSeq: (i % 4) + (wasMoved ? 1 : 0) },
            `run ${i} has the wrong head`,
          );
        }
      });
    }, 60_000);
  });
}

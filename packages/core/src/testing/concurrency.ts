/** Conformance: races between instances have exactly one winner, and appends never collide. */
import assert from "node:assert/strict";
import { label, labelOf, newRun, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const TIMEOUT_MS = 10_000;

export function describeConcurrency(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("concurrency", () => {
    it(
      "lets exactly one of 20 concurrent updateRun calls with the same version apply",
      async () => {
        await withStores(target, async ({ store, peer }) => {
          const record = newRun("in-progress");
          await store.createRun(record, []);
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              (i % 2 === 0 ? store : peer).updateRun(
                record.run.run_id,
                1,
                { ...withStatus(record, "awaiting"), owner: `writer-${i}` },
                [label(i)],
              ),
            ),
          );
          const winners = results.flatMap((result, i) => (result.ok ? [i] : []));
          assert.equal(winners.length, 1, `${winners.length} updates applied`);
          const winner = winners[0]!;
          const stored = await store.getRun(record.run.run_id);
          assert.equal(stored?.version, 2);
          assert.equal(stored?.owner, `writer-${winner}`);
          for (const result of results)
            if (!result.ok)
              assert.deepEqual(result.record, stored, "a refused update did not return the current record");
          const log = await store.readEvents(record.run.run_id, 0);
          assert.deepEqual(
            log.map((event) => labelOf(event.event)),
            [winner],
            "a refused update appended its events",
          );
        });
      },
      TIMEOUT_MS,
    );

    it(
      "numbers 50 concurrent appendEvents calls 1..50, each seq once",
      async () => {
        await withStores(target, async ({ store, peer }) => {
          const { run } = newRun("in-progress");
          await store.createRun({ run, version: 1, owner: "a" }, []);
          const seqs = await Promise.all(
            Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : peer).appendEvents(run.run_id, [label(i)])),
          );
          assert.deepEqual(
            [...seqs].sort((a, b) => (a ?? 0) - (b ?? 0)),
            Array.from({ length: 50 }, (_, i) => i + 1),
          );
          const log = await store.readEvents(run.run_id, 0);
          assert.deepEqual(
            log.map((event) => event.seq),
            Array.from({ length: 50 }, (_, i) => i + 1),
          );
          // Each call's event sits at the seq that call returned.
          for (const [i, seq] of seqs.entries()) assert.equal(labelOf(log[seq! - 1]!.event), i);
        });
      },
      TIMEOUT_MS,
    );

    it(
      "keeps the events of each concurrent multi-event append contiguous",
      async () => {
        await withStores(target, async ({ store, peer }) => {
          const { run } = newRun("in-progress");
          await store.createRun({ run, version: 1, owner: "a" }, []);
          const batches = Array.from({ length: 20 }, (_, batch) => [0, 1, 2].map((i) => label(`${batch}.${i}`)));
          const lastSeqs = await Promise.all(
            batches.map((events, i) => (i % 2 === 0 ? store : peer).appendEvents(run.run_id, events)),
          );
          const log = await store.readEvents(run.run_id, 0);
          assert.equal(log.length, 60);
          for (const [i, events] of batches.entries()) {
            const last = lastSeqs[i];
            assert.ok(typeof last === "number", "an append returned null");
            assert.deepEqual(
              log.slice(last - 3, last).map((stored) => stored.event),
              events,
              "an append's events are not contiguous, or its returned seq is not its last event's",
            );
          }
        });
      },
      TIMEOUT_MS,
    );
  });
}

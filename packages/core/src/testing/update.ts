/** Conformance: compare-and-set of run records with `updateRun`. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { historyItem, label, newRun, runEvent, withStatus, writeHistory } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

export function describeUpdate(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("updateRun", () => {
    it("applies when the version matches and increments it, whatever next.version says", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        await store.createRun(record, [runEvent(record)]);
        const next = { ...withStatus(record, "in-progress"), version: 40 };
        const result = await peer.updateRun(record.run.run_id, 1, next, []);
        const expected = { ...next, version: 2 };
        assert.deepEqual(result, { ok: true, record: expected, lastSeq: 1 });
        assert.deepEqual(await store.getRun(record.run.run_id), expected);

        const again = await store.updateRun(record.run.run_id, 2, withStatus(record, "awaiting"), []);
        assert.equal(again.ok, true);
        assert.equal(again.record?.version, 3);
      });
    });

    it("refuses a stale version, returns the current record and writes nothing", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        await store.createRun(record, [runEvent(record)]);
        const current = (await store.updateRun(record.run.run_id, 1, withStatus(record, "in-progress"), [label("won")]))
          .record;
        assert.equal(current?.version, 2);

        for (const expectedVersion of [1, 3, 0]) {
          const result = await peer.updateRun(record.run.run_id, expectedVersion, withStatus(record, "cancelled"), [
            label("lost"),
          ]);
          assert.deepEqual(result, { ok: false, record: current }, `expectedVersion ${expectedVersion} must not apply`);
        }
        assert.deepEqual(await store.getRun(record.run.run_id), current);
        const seqs = (await store.readEvents(record.run.run_id, 0)).map((stored) => stored.seq);
        assert.deepEqual(seqs, [1, 2], "a refused update appended events");
      });
    });

    it("returns { ok: false, record: undefined } for an unknown run and creates nothing", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        const result = await store.updateRun(record.run.run_id, 1, record, [label("x")]);
        assert.deepEqual(result, { ok: false, record: undefined });
        assert.equal(await store.getRun(record.run.run_id), undefined);
        assert.deepEqual(await store.readEvents(record.run.run_id, 0), []);
        assert.deepEqual(await store.readEvents(randomUUID(), 0), []);
      });
    });

    it("appends its events after the existing ones and reports the last seq", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        await store.createRun(record, [runEvent(record)]);
        await store.appendEvents(record.run.run_id, [label("a")]);
        const running = withStatus(record, "in-progress");
        const result = await peer.updateRun(record.run.run_id, 1, running, [runEvent(running), label("b")]);
        assert.equal(result.ok, true);
        assert.equal(result.ok && result.lastSeq, 4);
        assert.deepEqual(await store.readEvents(record.run.run_id, 0), [
          { seq: 1, event: runEvent(record) },
          { seq: 2, event: label("a") },
          { seq: 3, event: runEvent(running) },
          { seq: 4, event: label("b") },
        ]);
      });
    });

    it("reports lastSeq 0 for a run without events and no events given", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        await store.createRun(record, []);
        const result = await store.updateRun(record.run.run_id, 1, withStatus(record, "in-progress"), []);
        assert.deepEqual(result.ok && result.lastSeq, 0);
      });
    });

    it("keeps its own copies of next and of the record it returns", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        await store.createRun(record, []);
        const next = withStatus(record, "in-progress");
        const result = await store.updateRun(record.run.run_id, 1, next, []);
        const expected = { ...structuredClone(next), version: 2 };
        next.run.status = "failed";
        assert.ok(result.record, "the update did not apply");
        result.record.run.status = "cancelled";
        result.record.owner = "someone-else";
        assert.deepEqual(await store.getRun(record.run.run_id), expected);
      });
    });

    it("appends the history given with an update to the session, readable by item id, after what it held", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        const sessionId = randomUUID();
        const earlier = historyItem("an earlier turn");
        await writeHistory(store, sessionId, [earlier]);
        await store.createRun(record, []);
        const items = [historyItem("question"), historyItem("answer")];
        const result = await peer.updateRun(record.run.run_id, 1, withStatus(record, "completed"), [label("end")], {
          history: { sessionId, items },
        });
        assert.equal(result.ok, true);
        assert.deepEqual(await store.getHistory(sessionId), [earlier, ...items]);
        assert.deepEqual(await store.getHistoryItem(items[1]!.id), items[1]);
        // A new session is created by it too.
        const other = newRun();
        const newSession = randomUUID();
        await store.createRun(other, []);
        await store.updateRun(other.run.run_id, 1, withStatus(other, "failed"), [], {
          history: { sessionId: newSession, items: [historyItem("alone")] },
        });
        assert.equal((await peer.getHistory(newSession))?.length, 1);
      });
    });

    it("never doubles the history of an update retried after it applied", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        const sessionId = randomUUID();
        await store.createRun(record, []);
        const history = { sessionId, items: [historyItem("question"), historyItem("answer")] };
        const next = withStatus(record, "completed");
        assert.equal((await store.updateRun(record.run.run_id, 1, next, [], { history })).ok, true);
        // The writer did not learn that it applied (a timeout), and writes again.
        const retried = await peer.updateRun(record.run.run_id, 1, next, [], { history });
        assert.equal(retried.ok, false);
        assert.deepEqual(await store.getHistory(sessionId), history.items);
      });
    });
  });
}

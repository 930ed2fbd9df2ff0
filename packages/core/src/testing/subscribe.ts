/** Conformance: change notifications per run. */
import assert from "node:assert/strict";
import type { StoredEvent } from "../store.ts";
import { ListenerProbe, label, labelOf, NOTIFY_TIMEOUT_MS, newRun, signalled, within, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

export function describeSubscribe(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("subscribe", () => {
    it("calls the listener after appendEvents, once the event is readable", async () => {
      await withStores(target, async ({ store }) => {
        const { run } = newRun("in-progress");
        await store.createRun({ run, version: 1, owner: "a" }, []);
        const probe = new ListenerProbe();
        const unsubscribe = await store.subscribe(run.run_id, probe.listener);
        try {
          const called = probe.next();
          await store.appendEvents(run.run_id, [label("hello")]);
          await signalled(called, "no call after appendEvents");
          assert.deepEqual(await store.readEvents(run.run_id, 0), [{ seq: 1, event: label("hello") }]);
          assert.ok(
            probe.kinds.some((kind) => kind !== "record"),
            `appendEvents was signalled only as a record change: ${probe.kinds}`,
          );
        } finally {
          await unsubscribe();
        }
      });
    });

    it("calls the listener after updateRun, saying the record changed", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        await store.createRun(record, []);
        const probe = new ListenerProbe();
        const unsubscribe = await store.subscribe(record.run.run_id, probe.listener);
        try {
          const called = probe.next();
          await store.updateRun(record.run.run_id, 1, withStatus(record, "in-progress"), []);
          await signalled(called, "no call after updateRun");
          assert.equal((await store.getRun(record.run.run_id))?.version, 2);
          // "events" alone would let an owner miss a cancel or a resume.
          assert.ok(
            probe.kinds.some((kind) => kind !== "events"),
            `updateRun was signalled only as "events"`,
          );
        } finally {
          await unsubscribe();
        }
      });
    });

    it("calls the listener for changes made through the peer", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        await store.createRun(record, []);
        const probe = new ListenerProbe();
        const unsubscribe = await store.subscribe(record.run.run_id, probe.listener);
        try {
          let called = probe.next();
          await peer.updateRun(record.run.run_id, 1, withStatus(record, "in-progress"), []);
          await signalled(called, "no call after the peer's updateRun");
          called = probe.next();
          await peer.appendEvents(record.run.run_id, [label("from peer")]);
          await signalled(called, "no call after the peer's appendEvents");
        } finally {
          await unsubscribe();
        }
      });
    });

    it("stops calling after unsubscribe, which is idempotent", async () => {
      await withStores(target, async ({ store, peer }) => {
        const { run } = newRun("in-progress");
        await store.createRun({ run, version: 1, owner: "a" }, []);
        const stopped = new ListenerProbe();
        const barrier = new ListenerProbe();
        const unsubscribe = await store.subscribe(run.run_id, stopped.listener);
        const unsubscribeBarrier = await store.subscribe(run.run_id, barrier.listener);
        try {
          const called = stopped.next();
          await store.appendEvents(run.run_id, [label(1)]);
          await signalled(called, "no call before unsubscribe");
          await unsubscribe();
          await unsubscribe();
          const callsBefore = stopped.calls;
          // The still-subscribed listener is the barrier: once it fires, a call to the stopped one would have come too.
          for (const [i, writer] of [store, peer, store].entries()) {
            const reached = barrier.next();
            await writer.appendEvents(run.run_id, [label(i + 2)]);
            await signalled(reached, "no call to the listener that is still subscribed");
          }
          assert.equal(stopped.calls, callsBefore, "the listener was called after unsubscribe");
        } finally {
          await unsubscribe();
          await unsubscribeBarrier();
        }
      });
    });

    it("lets a reader that subscribes, then reads, see every event while a writer appends", async () => {
      await withStores(target, async ({ store, peer }) => {
        const { run } = newRun("in-progress");
        const total = 40;
        await store.createRun({ run, version: 1, owner: "a" }, []);
        for (let n = 1; n <= 5; n++) await peer.appendEvents(run.run_id, [label(n)]);

        const writer = (async (): Promise<void> => {
          for (let n = 6; n <= total; n++) await peer.appendEvents(run.run_id, [label(n)]);
        })();

        const seen: StoredEvent[] = [];
        const probe = new ListenerProbe();
        const unsubscribe = await store.subscribe(run.run_id, probe.listener);
        try {
          while (seen.length < total) {
            const woken = probe.next();
            const batch = await store.readEvents(run.run_id, seen.at(-1)?.seq ?? 0);
            seen.push(...batch);
            if (batch.length === 0)
              await signalled(
                woken,
                `the reader stalled after seq ${seen.at(-1)?.seq ?? 0}: a change was not signalled`,
              );
          }
          await within(writer, NOTIFY_TIMEOUT_MS, "the writer did not finish");
        } finally {
          await unsubscribe();
        }
        assert.deepEqual(
          seen.map((stored) => [stored.seq, labelOf(stored.event)]),
          Array.from({ length: total }, (_, i) => [i + 1, i + 1]),
        );
      });
    });
  });
}

/** Conformance: creating and reading run records. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { label, newRun, runEvent, textMessage, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

export function describeRuns(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("runs", () => {
    it("creates a run at version 1 and reads it back, also through the peer", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = { ...newRun(), version: 7 };
        assert.equal(await store.createRun(record, []), true);
        const expected = { ...record, version: 1 };
        assert.deepEqual(await store.getRun(record.run.run_id), expected);
        assert.deepEqual(await peer.getRun(record.run.run_id), expected);
      });
    });

    it("stores the events given to createRun as seq 1, 2, …", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        const events = [runEvent(record), label("a")];
        await store.createRun(record, events);
        assert.deepEqual(await store.readEvents(record.run.run_id, 0), [
          { seq: 1, event: events[0] },
          { seq: 2, event: events[1] },
        ]);
      });
    });

    it("keeps the resume field, null or a message", async () => {
      await withStores(target, async ({ store }) => {
        const waiting = {
          ...newRun("in-progress"),
          resume: { type: "message" as const, message: textMessage("go on") },
        };
        const cleared = { ...newRun("in-progress"), resume: null };
        await store.createRun(waiting, []);
        await store.createRun(cleared, []);
        assert.deepEqual((await store.getRun(waiting.run.run_id))?.resume, waiting.resume);
        assert.equal((await store.getRun(cleared.run.run_id))?.resume, null);
      });
    });

    it("keeps the tenant field through createRun and updateRun", async () => {
      await withStores(target, async ({ store, peer }) => {
        const owned = { ...newRun("in-progress"), tenant: "tenant-a" };
        await store.createRun(owned, []);
        assert.equal((await peer.getRun(owned.run.run_id))?.tenant, "tenant-a", "createRun lost the tenant");
        const moved = { ...withStatus(owned, "completed"), tenant: "tenant-a" };
        assert.equal((await peer.updateRun(owned.run.run_id, 1, moved, [])).ok, true);
        assert.equal((await store.getRun(owned.run.run_id))?.tenant, "tenant-a", "updateRun lost the tenant");
        const open = newRun();
        await store.createRun(open, []);
        assert.equal("tenant" in ((await peer.getRun(open.run.run_id)) ?? {}), false, "a run without a tenant got one");
      });
    });

    it("keeps the trace field through createRun and updateRun", async () => {
      await withStores(target, async ({ store, peer }) => {
        const trace = {
          traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          tracestate: "vendor=opaque,other=1",
        };
        const traced = { ...newRun("in-progress"), trace };
        await store.createRun(traced, []);
        assert.deepEqual((await peer.getRun(traced.run.run_id))?.trace, trace, "createRun lost the trace");
        const moved = { ...withStatus(traced, "completed"), trace };
        assert.equal((await peer.updateRun(traced.run.run_id, 1, moved, [])).ok, true);
        assert.deepEqual((await store.getRun(traced.run.run_id))?.trace, trace, "updateRun lost the trace");
        const plain = { ...newRun(), trace: { traceparent: trace.traceparent } };
        await store.createRun(plain, []);
        assert.deepEqual((await peer.getRun(plain.run.run_id))?.trace, { traceparent: trace.traceparent });
      });
    });

    it("refuses a second createRun with the same id and changes nothing", async () => {
      await withStores(target, async ({ store, peer }) => {
        const record = newRun();
        await store.createRun(record, [label("first")]);
        const intruder = { ...newRun("completed"), run: { ...newRun("completed").run, run_id: record.run.run_id } };
        assert.equal(await peer.createRun(intruder, [label("second")]), false);
        assert.deepEqual(await store.getRun(record.run.run_id), record);
        assert.deepEqual(await store.readEvents(record.run.run_id, 0), [{ seq: 1, event: label("first") }]);
      });
    });

    it("returns undefined for an unknown run", async () => {
      await withStores(target, async ({ store }) => {
        assert.equal(await store.getRun(randomUUID()), undefined);
      });
    });

    it("keeps its own copies: mutating what was passed in or read back changes nothing", async () => {
      await withStores(target, async ({ store }) => {
        const record = newRun();
        const event = label("original");
        const kept = structuredClone(record);
        await store.createRun(record, [event]);
        record.run.status = "failed";
        record.owner = "someone-else";
        (event as { generic: Record<string, unknown> }).generic.label = "changed";

        const read = await store.getRun(kept.run.run_id);
        assert.ok(read, "the run was not stored");
        read.run.output.push(textMessage("injected"));
        read.version = 99;
        const [first] = await store.readEvents(kept.run.run_id, 0);
        assert.ok(first, "the event was not stored");
        first.seq = 42;
        first.event = label("replaced");

        assert.deepEqual(await store.getRun(kept.run.run_id), kept);
        assert.deepEqual(await store.readEvents(kept.run.run_id, 0), [{ seq: 1, event: label("original") }]);
      });
    });

    it("answers ping", async () => {
      await withStores(target, async ({ store }) => {
        await store.ping();
      });
    });
  });
}

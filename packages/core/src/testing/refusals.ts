/**
 * Conformance: text a backend may not hold (NUL, unpaired surrogates). A store stores it exactly
 * or refuses it with a `StoreRefusedError` and writes nothing, never an outage, never half a write.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { Event } from "../models.ts";
import { isStoreRefusal } from "../store/store-error.ts";
import type { HistoryItem, Store, StoredRun } from "../store.ts";
import { label, newRun, runEvent, textMessage, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

/** Texts that JSON can carry but some backends refuse. */
const HARD_TEXTS = { "a NUL character": "before\u0000after", "an unpaired surrogate": "before\ud800after" };

/**
 * Runs `write` and tells whether the store took it: `true` when it resolved, `false` when it
 * rejected with a StoreRefusedError; any other failure fails the test.
 */
async function tookIt(write: () => Promise<unknown>, what: string): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    assert.ok(isStoreRefusal(error), `${what} failed with something else than a StoreRefusedError: ${String(error)}`);
    return false;
  }
}

/** The run with its output holding `text`. */
function withOutput(record: StoredRun, text: string): StoredRun {
  const next = structuredClone(record);
  next.run.output = [
    { role: "agent/conformance", parts: [{ content_type: "text/plain", content: text, content_encoding: "plain" }] },
  ];
  return next;
}

/** The store still works: a plain run goes in and comes back. */
async function stillWorks(store: Store): Promise<void> {
  const record = newRun("in-progress");
  assert.equal(await store.createRun(record, [runEvent(record)]), true, "the store refused a plain run afterwards");
  assert.equal((await store.getRun(record.run.run_id))?.version, 1);
}

export function describeRefusals(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("values a backend may refuse", () => {
    for (const [name, text] of Object.entries(HARD_TEXTS)) {
      it(`stores ${name} exactly or refuses it with StoreRefusedError, writing nothing`, async () => {
        await withStores(target, async ({ store, peer }) => {
          // createRun
          const created = withOutput(newRun("in-progress"), text);
          const event: Event = { type: "generic", generic: { text } };
          if (await tookIt(() => store.createRun(created, [event]), "createRun")) {
            assert.deepEqual(await peer.getRun(created.run.run_id), created, "createRun changed the text");
            assert.deepEqual(await peer.readEvents(created.run.run_id, 0), [{ seq: 1, event }]);
          } else {
            assert.equal(await peer.getRun(created.run.run_id), undefined, "a refused createRun wrote the run");
          }

          // updateRun, with events and history
          const record = newRun("in-progress");
          await store.createRun(record, [label("first")]);
          const sessionId = randomUUID();
          const item: HistoryItem = { id: randomUUID(), message: textMessage(text) };
          const next = withOutput(withStatus(record, "completed"), text);
          const updated = await tookIt(
            () => store.updateRun(record.run.run_id, 1, next, [event], { history: { sessionId, items: [item] } }),
            "updateRun",
          );
          const stored = await peer.getRun(record.run.run_id);
          if (updated) {
            assert.deepEqual(stored, { ...next, version: 2 }, "updateRun changed the text");
            assert.deepEqual(await peer.getHistory(sessionId), [item], "the history changed the text");
          } else {
            assert.deepEqual(stored, record, "a refused updateRun changed the record");
            assert.equal(
              (await peer.readEvents(record.run.run_id, 0)).length,
              1,
              "a refused updateRun appended events",
            );
            // A store whose history cannot join the run's write (Redis Cluster) may keep the items.
          }

          // appendEvents
          const streaming = newRun("in-progress");
          await store.createRun(streaming, [label("first")]);
          if (await tookIt(() => store.appendEvents(streaming.run.run_id, [event]), "appendEvents")) {
            assert.deepEqual((await peer.readEvents(streaming.run.run_id, 1))[0]?.event, event);
          } else {
            assert.equal((await peer.readEvents(streaming.run.run_id, 0)).length, 1, "a refused append wrote events");
          }

          await stillWorks(store);
        });
      });
    }
  });
}

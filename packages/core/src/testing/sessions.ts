/** Conformance: session histories and their items, written with the last update of runs. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { type HistoryItem, historyItemBytes } from "../store.ts";
import { historyItem, newRun, runEvent, textMessage, withStatus, writeHistory } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

export function describeSessions(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("sessions", () => {
    it("creates a session on the first update that carries history and keeps items in append order", async () => {
      await withStores(target, async ({ store, peer }) => {
        const sessionId = randomUUID();
        const [a, b, c] = [historyItem("a"), historyItem("b"), historyItem("c")];
        await writeHistory(store, sessionId, [a, b]);
        assert.deepEqual(await peer.getHistory(sessionId), [a, b]);
        await writeHistory(peer, sessionId, [c]);
        assert.deepEqual(await store.getHistory(sessionId), [a, b, c]);
      });
    });

    it("appends the history a run is created with, after any earlier items, and not when the id is taken", async () => {
      await withStores(target, async ({ store, peer }) => {
        const sessionId = randomUUID();
        const [a, b, c] = [historyItem("a"), historyItem("b"), historyItem("c")];
        await writeHistory(store, sessionId, [a]);
        const ended = withStatus(newRun("in-progress"), "completed");
        const history = { sessionId, items: [b, c] };
        assert.equal(await store.createRun(ended, [runEvent(ended)], { history }), true);
        assert.deepEqual(await peer.getHistory(sessionId), [a, b, c]);
        assert.deepEqual(await peer.getHistoryItem(c.id), c);
        assert.deepEqual((await peer.getRun(ended.run.run_id))?.run, ended.run);
        // A retried create of the same run (its first attempt landed) adds nothing.
        assert.equal(await peer.createRun(ended, [runEvent(ended)], { history }), false);
        assert.deepEqual(await store.getHistory(sessionId), [a, b, c]);
        assert.deepEqual((await store.getSession(sessionId))?.itemIds, [a.id, b.id, c.id]);
      });
    });

    it("returns undefined for an unknown session", async () => {
      await withStores(target, async ({ store }) => {
        await writeHistory(store, randomUUID(), [historyItem("elsewhere")]);
        assert.equal(await store.getHistory(randomUUID()), undefined);
      });
    });

    it("reads each item by its id, from any session, and undefined for an unknown id", async () => {
      await withStores(target, async ({ store, peer }) => {
        const first = historyItem("in the first session");
        const second = historyItem("in the second session");
        await writeHistory(store, randomUUID(), [first]);
        await writeHistory(peer, randomUUID(), [second]);
        assert.deepEqual(await peer.getHistoryItem(first.id), first);
        assert.deepEqual(await store.getHistoryItem(second.id), second);
        assert.equal(await store.getHistoryItem(randomUUID()), undefined);
      });
    });

    it("keeps every item of concurrent updates to one session, each update's items contiguous and in order", async () => {
      await withStores(target, async ({ store, peer }) => {
        const sessionId = randomUUID();
        const batches: HistoryItem[][] = Array.from({ length: 12 }, (_, batch) =>
          Array.from({ length: 3 }, (_, i) => historyItem(`${batch}.${i}`)),
        );
        await Promise.all(batches.map((items, i) => writeHistory(i % 2 === 0 ? store : peer, sessionId, items)));
        const history = await store.getHistory(sessionId);
        assert.ok(history, "the session was not created");
        assert.equal(history.length, 36, "some appended items are missing or repeated");
        for (const items of batches) {
          const start = history.findIndex((item) => item.id === items[0]?.id);
          assert.notEqual(start, -1, "a batch is missing");
          assert.deepEqual(
            history.slice(start, start + items.length),
            items,
            "a batch is not contiguous or out of order",
          );
        }
      });
    });

    it("summarises a session with getSession: its item ids in order and the bytes of their messages", async () => {
      await withStores(target, async ({ store, peer }) => {
        const sessionId = randomUUID();
        // Characters of one to four bytes in UTF-8, and one JSON escapes.
        const items = [historyItem("plain"), historyItem("é ✓ 🙂"), historyItem('quote " and newline\n')];
        await writeHistory(store, sessionId, items.slice(0, 2));
        await writeHistory(peer, sessionId, items.slice(2));
        const bytes = items.reduce((sum, item) => sum + historyItemBytes(item), 0);
        for (const reader of [store, peer]) {
          assert.deepEqual(await reader.getSession(sessionId), { itemIds: items.map((item) => item.id), bytes });
        }
        assert.equal(await store.getSession(randomUUID()), undefined, "an unknown session has a summary");
      });
    });

    it("agrees with getHistory after concurrent updates to one session", async () => {
      await withStores(target, async ({ store, peer }) => {
        const sessionId = randomUUID();
        const batches = Array.from({ length: 6 }, (_, batch) => [historyItem(`${batch}.a`), historyItem(`${batch}.b`)]);
        await Promise.all(batches.map((items, i) => writeHistory(i % 2 === 0 ? store : peer, sessionId, items)));
        const history = await peer.getHistory(sessionId);
        assert.deepEqual(await store.getSession(sessionId), {
          itemIds: history?.map((item) => item.id),
          bytes: batches.flat().reduce((sum, item) => sum + historyItemBytes(item), 0),
        });
      });
    });

    it("keeps its own copies of items", async () => {
      await withStores(target, async ({ store }) => {
        const sessionId = randomUUID();
        const item = historyItem("original");
        const kept = structuredClone(item);
        await writeHistory(store, sessionId, [item]);
        item.message.parts[0]!.content = "changed";
        const read = await store.getHistory(sessionId);
        read?.push(historyItem("injected"));
        read?.[0]?.message.parts.push(textMessage("more").parts[0]!);
        const one = await store.getHistoryItem(kept.id);
        if (one) one.message.role = "agent/intruder";
        assert.deepEqual(await store.getHistory(sessionId), [kept]);
        assert.deepEqual(await store.getHistoryItem(kept.id), kept);
      });
    });
  });
}

/**
 * Conformance: expiry. These are the suite's only long waits, so the TTL is short and each
 * test waits once.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { historyItem, label, newRun, runEvent, sleep, stepRecord, withStatus, writeHistory } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const TTL_MS = 1_000;
/** Added to waits that must outlast a TTL, for clock granularity and slow round trips. */
const MARGIN_MS = 250;
const TIMEOUT_MS = 10_000;

export function describeTtl(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("TTL", () => {
    it(
      "forgets runs, events, steps, sessions and items ttlMs after their last write",
      async () => {
        await withStores(
          target,
          async ({ store, peer }) => {
            const record = newRun("in-progress");
            const sessionId = randomUUID();
            const item = historyItem("short-lived");
            await store.createRun(record, [runEvent(record), label("x")]);
            assert.equal(await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1)), true);
            await writeHistory(store, sessionId, [item]);
            assert.ok(await store.getRun(record.run.run_id), "the run was not stored");
            assert.ok(await store.getHistoryItem(item.id), "the item was not stored");

            await sleep(TTL_MS + MARGIN_MS);
            for (const reader of [store, peer]) {
              assert.equal(await reader.getRun(record.run.run_id), undefined, "the run outlived its TTL");
              assert.equal((await reader.getRunHeads([record.run.run_id])).size, 0, "the run's head outlived its TTL");
              assert.deepEqual(await reader.readEvents(record.run.run_id, 0), [], "the events outlived their TTL");
              assert.deepEqual(await reader.readSteps(record.run.run_id), [], "the steps outlived their TTL");
              assert.equal(await reader.getHistory(sessionId), undefined, "the session outlived its TTL");
              assert.equal(await reader.getHistoryItem(item.id), undefined, "the item outlived its TTL");
            }
            assert.equal(
              await store.appendEvents(record.run.run_id, [label("late")]),
              null,
              "appendEvents revived an expired run",
            );
            const update = await store.updateRun(record.run.run_id, 1, withStatus(record, "completed"), []);
            assert.deepEqual(update, { ok: false, record: undefined }, "updateRun applied to an expired run");
            assert.equal(await store.createRun(record, []), true, "an expired run id could not be created again");
            assert.deepEqual(
              await store.readEvents(record.run.run_id, 0),
              [],
              "a re-created run got the expired run's events",
            );
            assert.deepEqual(
              await store.readSteps(record.run.run_id),
              [],
              "a re-created run got the expired run's steps",
            );
            assert.equal(
              await store.recordStep(record.run.run_id, 1, stepRecord(0, "b", 2)),
              true,
              "a re-created run's index 0 is still taken by the expired run's step",
            );
            // A run's end that writes history to the expired session starts the session over.
            const next = newRun("in-progress");
            const fresh = historyItem("fresh");
            await store.createRun(next, []);
            const ended = await store.updateRun(next.run.run_id, 1, withStatus(next, "completed"), [], {
              history: { sessionId, items: [fresh] },
            });
            assert.equal(ended.ok, true, "the update of a new run did not apply");
            assert.deepEqual(
              await peer.getHistory(sessionId),
              [fresh],
              "an update's history did not start the expired session over",
            );
          },
          TTL_MS,
        );
      },
      TIMEOUT_MS,
    );

    it(
      "keeps the runs an instance owns that have not ended, with their events, while it sends heartbeats",
      async () => {
        await withStores(
          target,
          async ({ store, peer }) => {
            const owner = `instance-${randomUUID()}`;
            const running = { ...newRun("in-progress"), owner };
            const awaiting = { ...newRun("awaiting"), owner };
            const ended = { ...newRun("completed"), owner };
            const others = newRun("in-progress");
            for (const record of [running, awaiting, ended, others]) {
              await store.createRun(record, [runEvent(record), label("x")]);
              if (record !== ended) await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1));
            }

            // Heartbeats through either store, for well over a TTL, and no other write.
            const until = Date.now() + TTL_MS * 2;
            for (let beat = 0; Date.now() < until; beat++) {
              await (beat % 2 === 0 ? peer : store).heartbeat(owner, TTL_MS);
              await sleep(TTL_MS / 5);
            }

            for (const record of [running, awaiting]) {
              const runId = record.run.run_id;
              assert.equal(
                (await store.getRun(runId))?.version,
                1,
                `a ${record.run.status} run expired while its owner sent heartbeats`,
              );
              assert.equal((await peer.readEvents(runId, 0)).length, 2, "its events expired while its owner lived");
              assert.deepEqual(
                await peer.readSteps(runId),
                [stepRecord(0, "a", 1)],
                "its steps expired while its owner lived",
              );
            }
            assert.equal(await store.getRun(ended.run.run_id), undefined, "heartbeats kept a run that has ended");
            assert.equal(await store.getRun(others.run.run_id), undefined, "heartbeats kept a run of another instance");
          },
          TTL_MS,
        );
      },
      TIMEOUT_MS,
    );

    it(
      "restarts the TTL of a run, its events and its steps on recordStep",
      async () => {
        await withStores(
          target,
          async ({ store, peer }) => {
            const refreshed = newRun("in-progress");
            const untouched = newRun("in-progress");
            const createdAt = Date.now();
            for (const record of [refreshed, untouched]) {
              await store.createRun(record, [runEvent(record)]);
              await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1));
            }
            await sleep(TTL_MS / 2);
            assert.equal(await peer.recordStep(refreshed.run.run_id, 1, stepRecord(1, "b", 2)), true);
            await sleep(Math.max(0, createdAt + TTL_MS + MARGIN_MS - Date.now()));

            const runId = refreshed.run.run_id;
            assert.equal((await store.getRun(runId))?.version, 1, "recordStep did not restart the run's TTL");
            assert.equal((await store.readEvents(runId, 0)).length, 1, "recordStep did not restart the events' TTL");
            assert.deepEqual(
              await store.readSteps(runId),
              [stepRecord(0, "a", 1), stepRecord(1, "b", 2)],
              "recordStep did not restart the TTL of the earlier steps",
            );
            assert.equal(
              await store.getRun(untouched.run.run_id),
              undefined,
              "the run not written again did not expire",
            );
            assert.deepEqual(await store.readSteps(untouched.run.run_id), [], "the steps of the expired run remain");
          },
          TTL_MS,
        );
      },
      TIMEOUT_MS,
    );

    it(
      "restarts the TTL of a run and its events on updateRun, and of a session and its items on an update that carries history",
      async () => {
        await withStores(
          target,
          async ({ store, peer }) => {
            const refreshed = newRun("in-progress");
            const untouched = newRun("in-progress");
            const refreshedSession = randomUUID();
            const untouchedSession = randomUUID();
            const oldItem = historyItem("old");
            const newItem = historyItem("new");
            const createdAt = Date.now();
            await store.createRun(untouched, [runEvent(untouched)]);
            await writeHistory(store, untouchedSession, [historyItem("forgotten")]);
            await store.createRun(refreshed, [runEvent(refreshed)]);
            await writeHistory(store, refreshedSession, [oldItem]);

            // Write again halfway through the TTL, then look after the first TTL has passed.
            await sleep(TTL_MS / 2);
            const update = await peer.updateRun(refreshed.run.run_id, 1, withStatus(refreshed, "awaiting"), []);
            assert.equal(update.ok, true);
            await writeHistory(peer, refreshedSession, [newItem]);
            await sleep(Math.max(0, createdAt + TTL_MS + MARGIN_MS - Date.now()));

            assert.equal(
              (await store.getRun(refreshed.run.run_id))?.version,
              2,
              "updateRun did not restart the run's TTL",
            );
            assert.equal(
              (await store.readEvents(refreshed.run.run_id, 0)).length,
              1,
              "updateRun did not restart the TTL of the run's events",
            );
            assert.deepEqual(
              await store.getHistory(refreshedSession),
              [oldItem, newItem],
              "history written later did not restart the session's TTL",
            );
            assert.deepEqual(
              await store.getHistoryItem(oldItem.id),
              oldItem,
              "history written later did not restart the TTL of the session's items",
            );
            // The runs and sessions not written again are the control: they are gone.
            assert.equal(
              await store.getRun(untouched.run.run_id),
              undefined,
              "the run not written again did not expire",
            );
            assert.equal(
              await store.getHistory(untouchedSession),
              undefined,
              "the session not written again did not expire",
            );
          },
          TTL_MS,
        );
      },
      TIMEOUT_MS,
    );
  });
}

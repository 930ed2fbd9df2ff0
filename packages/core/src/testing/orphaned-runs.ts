/** Conformance: `listOrphanedRuns`, which instances use to find the runs whose owner died. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RunStatus } from "../models.ts";
import type { StoredRun } from "../store.ts";
import { newRun, sleep, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const ACTIVE: RunStatus[] = ["created", "in-progress", "awaiting", "cancelling"];
const ENDED: RunStatus[] = ["completed", "failed", "cancelled"];
/** Long enough to outlast the writes of a test. */
const LONG_LEASE_MS = 60_000;
const SHORT_LEASE_MS = 250;

/** A new run owned by `owner`. */
function ownedBy(owner: string, status: RunStatus = "in-progress"): StoredRun {
  return { ...newRun(status), owner };
}

export function describeOrphanedRuns(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("listOrphanedRuns", () => {
    it("lists the runs not ended whose owner has no lease, whichever instance wrote them, and not the others", async () => {
      await withStores(target, async ({ store, peer }) => {
        const dead = `instance-${randomUUID()}`;
        const alive = `instance-${randomUUID()}`;
        await store.heartbeat(alive, LONG_LEASE_MS);
        const orphans = ACTIVE.map((status) => ownedBy(dead, status));
        const ended = ENDED.map((status) => ownedBy(dead, status));
        const held = ACTIVE.map((status) => ownedBy(alive, status));
        for (const [i, record] of [...orphans, ...ended, ...held].entries())
          assert.equal(await (i % 2 === 0 ? store : peer).createRun(record, []), true);

        // A run that moved from one active status to another stays an orphan.
        const moved = ownedBy(dead, "created");
        await store.createRun(moved, []);
        await peer.updateRun(moved.run.run_id, 1, withStatus(moved, "awaiting"), []);
        // A run that ended through an update is no orphan any more.
        const finished = ownedBy(dead);
        await store.createRun(finished, []);
        await peer.updateRun(finished.run.run_id, 1, withStatus(finished, "completed"), []);

        for (const reader of [store, peer]) {
          const listed = new Set(await reader.listOrphanedRuns());
          for (const record of [...orphans, moved])
            assert.ok(listed.has(record.run.run_id), `a ${record.run.status} run of a dead owner is not listed`);
          for (const record of [...ended, finished])
            assert.ok(!listed.has(record.run.run_id), `a ${record.run.status} run is listed as an orphan`);
          for (const record of held)
            assert.ok(!listed.has(record.run.run_id), `a ${record.run.status} run of a live owner is listed`);
        }
      });
    });

    it("lists the runs of an owner once its lease runs out", async () => {
      await withStores(target, async ({ store, peer }) => {
        const owner = `instance-${randomUUID()}`;
        await store.heartbeat(owner, SHORT_LEASE_MS);
        const record = ownedBy(owner, "awaiting");
        await store.createRun(record, []);
        assert.ok(!(await peer.listOrphanedRuns()).includes(record.run.run_id), "listed while its owner lives");
        await sleep(SHORT_LEASE_MS + 150);
        assert.ok((await peer.listOrphanedRuns()).includes(record.run.run_id), "not listed after its owner died");
      });
    });

    it("follows a run to its new owner", async () => {
      await withStores(target, async ({ store, peer }) => {
        const dead = `instance-${randomUUID()}`;
        const alive = `instance-${randomUUID()}`;
        await store.heartbeat(alive, LONG_LEASE_MS);
        const adopted = ownedBy(dead);
        const abandoned = ownedBy(alive);
        await store.createRun(adopted, []);
        await store.createRun(abandoned, []);
        await peer.updateRun(adopted.run.run_id, 1, { ...adopted, owner: alive }, []);
        await peer.updateRun(abandoned.run.run_id, 1, { ...abandoned, owner: dead }, []);
        const listed = await store.listOrphanedRuns();
        assert.ok(!listed.includes(adopted.run.run_id), "a run taken over by a live owner is still listed");
        assert.ok(listed.includes(abandoned.run.run_id), "a run handed to a dead owner is not listed");
      });
    });

    it('lists the runs not ended that have no owner (owner ""), created so or released by an update', async () => {
      await withStores(target, async ({ store, peer }) => {
        const alive = `instance-${randomUUID()}`;
        await store.heartbeat(alive, LONG_LEASE_MS);
        const created = ownedBy("", "in-progress");
        await store.createRun(created, []);
        // A draining instance hands its runs off: same epoch, no owner.
        const released = ACTIVE.map((status) => ownedBy(alive, status));
        for (const record of released) {
          await store.createRun(record, []);
          assert.equal((await peer.updateRun(record.run.run_id, 1, { ...record, owner: "" }, [])).ok, true);
        }
        const ended = ownedBy("", "completed");
        await store.createRun(ended, []);
        const endedLater = ownedBy(alive);
        await store.createRun(endedLater, []);
        await peer.updateRun(endedLater.run.run_id, 1, { ...withStatus(endedLater, "cancelled"), owner: "" }, []);

        for (const reader of [store, peer]) {
          const listed = new Set(await reader.listOrphanedRuns());
          for (const record of [created, ...released])
            assert.ok(listed.has(record.run.run_id), `a ${record.run.status} run without owner is not listed`);
          for (const record of [ended, endedLater])
            assert.ok(!listed.has(record.run.run_id), "an ended run without owner is listed");
        }
        // Adopted again by a live owner, it is no orphan any more.
        const [adopted] = released;
        await store.updateRun(adopted!.run.run_id, 2, { ...adopted!, owner: alive, epoch: 2 }, []);
        assert.ok(!(await peer.listOrphanedRuns()).includes(adopted!.run.run_id), "an adopted run is still listed");
      });
    });

    it("lists a run released after every earlier released run was adopted and the search found none left", async () => {
      await withStores(target, async ({ store, peer }) => {
        const alive = `instance-${randomUUID()}`;
        await store.heartbeat(alive, LONG_LEASE_MS);
        const first = ownedBy(alive, "in-progress");
        await store.createRun(first, []);
        await store.updateRun(first.run.run_id, 1, { ...first, owner: "" }, []);
        // Another instance adopts it, and its next search finds no run without owner.
        await peer.updateRun(first.run.run_id, 2, { ...first, owner: alive, epoch: 2 }, []);
        await sleep(5); // Stores that score owners by time: the search starts after the release.
        assert.ok(!(await peer.listOrphanedRuns()).includes(first.run.run_id), "an adopted run is still listed");
        await sleep(5);
        assert.ok(!(await peer.listOrphanedRuns()).includes(first.run.run_id), "an adopted run is still listed");
        // The same instance as before releases another run: it must be found although nothing changed here.
        const second = ownedBy(alive, "in-progress");
        await store.createRun(second, []);
        await store.updateRun(second.run.run_id, 1, { ...second, owner: "" }, []);
        assert.ok((await peer.listOrphanedRuns()).includes(second.run.run_id), "the second released run is not listed");
      });
    });

    it("lists at most limit runs, and the rest once those have ended", async () => {
      await withStores(target, async ({ store, peer }) => {
        const dead = `instance-${randomUUID()}`;
        const records = Array.from({ length: 5 }, () => ownedBy(dead));
        for (const record of records) await store.createRun(record, []);
        const ids = new Set(records.map((record) => record.run.run_id));
        const seen = new Set<string>();
        for (let round = 0; round < 3; round++) {
          const listed = (await peer.listOrphanedRuns(2)).filter((id) => ids.has(id));
          assert.ok(listed.length <= 2, `listed ${listed.length} runs with limit 2`);
          for (const id of listed) {
            seen.add(id);
            const record = records.find((candidate) => candidate.run.run_id === id)!;
            const ended = await peer.updateRun(id, 1, withStatus(record, "failed"), []);
            assert.equal(ended.ok, true, "an orphan listed twice or with a stale version");
          }
        }
        assert.equal(seen.size, 5, "not every orphan was found through limited calls");
      });
    });
  });
}

/** Conformance: `listActiveRuns`, which instances use to find runs whose owner died. */
import assert from "node:assert/strict";
import type { RunStatus } from "../models.ts";
import { newRun, withStatus } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

const ACTIVE: RunStatus[] = ["created", "in-progress", "awaiting", "cancelling"];
const ENDED: RunStatus[] = ["completed", "failed", "cancelled"];

export function describeActiveRuns(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("listActiveRuns", () => {
    it("contains every run that has not ended, whichever instance wrote it", async () => {
      await withStores(target, async ({ store, peer }) => {
        const active = ACTIVE.map((status) => newRun(status));
        const ended = ENDED.map((status) => newRun(status));
        for (const [i, record] of [...active, ...ended].entries())
          await (i % 2 === 0 ? store : peer).createRun(record, []);

        // A run that moved from one active status to another stays listed.
        const moved = newRun();
        await store.createRun(moved, []);
        await peer.updateRun(moved.run.run_id, 1, withStatus(moved, "awaiting"), []);
        // A run that ended may be listed or not; listing it must not hide the others.
        const finished = newRun("in-progress");
        await store.createRun(finished, []);
        await store.updateRun(finished.run.run_id, 1, withStatus(finished, "completed"), []);

        for (const reader of [store, peer]) {
          const listed = new Set(await reader.listActiveRuns());
          for (const record of [...active, moved]) {
            assert.ok(listed.has(record.run.run_id), `a ${record.run.status} run is missing from listActiveRuns`);
          }
        }
      });
    });
  });
}

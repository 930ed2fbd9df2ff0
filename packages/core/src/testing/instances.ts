/** Conformance: instance heartbeats and leases. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { sleep } from "./fixtures.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

/** Short enough to wait for, long enough that a heartbeat round trip fits well inside it. */
const SHORT_LEASE_MS = 250;

export function describeInstances(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("instances", () => {
    it("reports an instance alive during its lease, also to the peer, and not an unknown one", async () => {
      await withStores(target, async ({ store, peer }) => {
        const instanceId = randomUUID();
        assert.equal(await store.isAlive(instanceId), false);
        await store.heartbeat(instanceId, 60_000);
        assert.equal(await store.isAlive(instanceId), true);
        assert.equal(await peer.isAlive(instanceId), true);
        assert.equal(await peer.isAlive(randomUUID()), false);
      });
    });

    it("lets a lease run out, and a later heartbeat extend it", async () => {
      await withStores(target, async ({ store, peer }) => {
        const lapsing = randomUUID();
        const extended = randomUUID();
        await store.heartbeat(lapsing, SHORT_LEASE_MS);
        await store.heartbeat(extended, SHORT_LEASE_MS);
        await peer.heartbeat(extended, 60_000);
        await sleep(SHORT_LEASE_MS + 150);
        assert.equal(await store.isAlive(lapsing), false, "the lease did not run out");
        assert.equal(await peer.isAlive(lapsing), false, "the lease did not run out for the peer");
        assert.equal(await store.isAlive(extended), true, "a second heartbeat did not extend the lease");
      });
    });
  });
}

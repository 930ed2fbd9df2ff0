/**
 * The whole conformance suite on a 3-master Redis Cluster this test starts: the scripts only
 * touch keys of one slot, and notifications use sharded pub/sub.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describeStoreConformance, ListenerProbe, label, newRun, signalled, sleep, within } from "@acp/core/testing";
import { createClient, createCluster } from "redis";
import { afterAll, beforeAll, describe, it } from "vitest";
import { RedisStore } from "../src/index.ts";
import { type LocalCluster, startCluster } from "./support/cluster.ts";
import { connectToCluster, redisTarget } from "./support/target.ts";

describe("RedisStore on a 3-node Redis Cluster", () => {
  let cluster: LocalCluster | undefined;

  beforeAll(async () => {
    cluster = await startCluster(3);
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  const rootNodes = (): { url: string }[] => {
    if (!cluster) throw new Error("the cluster did not start");
    return cluster.rootNodes;
  };
  describeStoreConformance(redisTarget("RedisStore (cluster)", connectToCluster(rootNodes)), { describe, it });

  it("wakes every listener after a shard's pub/sub connection comes back, then keeps notifying", async () => {
    const cluster = createCluster({ rootNodes: rootNodes(), defaults: { socket: { connectTimeout: 2_000 } } });
    cluster.on("error", () => undefined);
    await cluster.connect();
    const prefix = `acp-test-${randomUUID()}`;
    const store = new RedisStore({ redis: cluster, prefix });
    const admins = await Promise.all(rootNodes().map(({ url }) => createClient({ url }).connect()));
    try {
      const records = [newRun("in-progress"), newRun("in-progress"), newRun("in-progress")];
      const probes = records.map(() => new ListenerProbe());
      for (const [i, record] of records.entries()) {
        await store.createRun(record, []);
        await store.subscribe(record.run.run_id, probes[i]!.listener);
      }
      // Cut every sharded pub/sub connection the store holds, on every node.
      const woken = probes.map((probe) => probe.next((kind) => kind === undefined));
      let killed = 0;
      for (const admin of admins) {
        for (const client of await admin.clientList()) {
          if ((client.ssub ?? 0) > 0) {
            await admin.clientKill({ filter: "ID", id: Number(client.id) });
            killed += 1;
          }
        }
      }
      assert.ok(killed > 0, "no sharded subscriber connection found");
      await Promise.all(woken.map((call, i) => signalled(call, `listener ${i} was not woken after the reconnect`)));

      // A shard that came back first wakes every listener; let the others resubscribe too.
      await within(
        (async () => {
          for (;;) {
            let subscribed = 0;
            for (const admin of admins) for (const client of await admin.clientList()) subscribed += client.ssub ?? 0;
            if (subscribed >= records.length) return;
            await sleep(50);
          }
        })(),
        5_000,
        "the shards did not resubscribe",
      );
      const next = probes[0]!.next((kind) => kind === "events");
      await store.appendEvents(records[0]!.run.run_id, [label("after the reconnect")]);
      await signalled(next, "no notification after the reconnect");
    } finally {
      await store.close();
      await Promise.all(admins.map((admin) => admin.close()));
      await cluster.close();
    }
  }, 20_000);
});

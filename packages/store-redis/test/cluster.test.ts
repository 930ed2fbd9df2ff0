/**
 * The whole conformance suite on a 3-master Redis Cluster this test starts: the scripts only
 * touch keys of one slot, and notifications use sharded pub/sub.
 */
import { describeStoreConformance } from "@acp/core/testing";
import { afterAll, beforeAll, describe, it } from "vitest";
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
});

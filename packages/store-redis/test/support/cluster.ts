/** A throwaway 3-master Redis Cluster on free loopback ports. */
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type RedisServer, run, startRedisServer, tempDir } from "./redis-server.ts";

const BUS_PORT_OFFSET = 10_000;
const STATE_OK_TIMEOUT_MS = 30_000;

export interface LocalCluster {
  rootNodes: { url: string }[];
  stop(): Promise<void>;
}

export async function startCluster(size = 3): Promise<LocalCluster> {
  const dir = await tempDir("acp-redis-cluster");
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
    await dir.remove();
  };
  try {
    const ports = new Set<number>();
    while (ports.size < size) ports.add(await freePort(BUS_PORT_OFFSET));
    for (const port of ports) {
      nodes.push(
        await startRedisServer(port, dir.path, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `nodes-${port}.conf`,
          "--cluster-node-timeout",
          "5000",
        ]),
      );
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    await waitForStateOk(nodes);
    return { rootNodes: nodes.map((node) => ({ url: node.url })), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Every node must see the whole cluster as ok before clients route by slot. */
async function waitForStateOk(nodes: RedisServer[]): Promise<void> {
  const deadline = Date.now() + STATE_OK_TIMEOUT_MS;
  for (const node of nodes) {
    for (;;) {
      const info = await run("redis-cli", ["-p", String(node.port), "cluster", "info"]);
      if (info.includes("cluster_state:ok")) break;
      if (Date.now() > deadline) throw new Error(`the cluster did not reach cluster_state:ok:\n${info}`);
      await sleep(100);
    }
  }
}

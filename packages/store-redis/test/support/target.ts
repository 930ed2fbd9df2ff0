/**
 * The conformance target for RedisStore: every store gets its own client and a random prefix;
 * destroy deletes the prefix's keys and closes that client.
 */
import { randomUUID } from "node:crypto";
import type { Store } from "@acp/core";
import type { ConformanceTarget } from "@acp/core/testing";
import { createClient, createCluster, type RedisClientType } from "redis";
import { type RedisConnection, RedisStore } from "../../src/index.ts";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A connection opened for a test, and how to clean up after it. */
export interface TestConnection {
  redis: RedisConnection;
  /** Deletes the keys under `prefix`, then closes the connection. */
  release(prefix: string): Promise<void>;
}

/** Opens a new connection; each store of a test gets its own, as separate instances would. */
export type Connect = () => Promise<TestConnection>;

/** Connects a client, failing fast and with a clear message when the server is not there. */
export async function connectClient(
  url: string,
  { reconnect = false, ...options }: { RESP?: 2 | 3; name?: string; reconnect?: boolean } = {},
): Promise<RedisClientType> {
  const socket = { connectTimeout: 2_000, reconnectStrategy: reconnect ? () => 50 : (false as const) };
  const client = createClient({ url, ...options, socket });
  client.on("error", ignore);
  try {
    // Typed as the default (RESP2) client: tests only call commands whose replies are alike.
    return (await client.connect()) as unknown as RedisClientType;
  } catch (error) {
    client.destroy();
    throw new Error(`Redis is not reachable at ${url} (set REDIS_URL to use another server): ${String(error)}`, {
      cause: error,
    });
  }
}

export function connectTo(url: string, options: { RESP?: 2 | 3 } = {}): Connect {
  return async function connect() {
    const client = await connectClient(url, options);
    return {
      redis: client,
      release: async (prefix) => {
        await deleteKeys([client], prefix);
        await client.close();
      },
    };
  };
}

/** A cluster client; `rootNodes` come from the cluster a test started. */
export function connectToCluster(rootNodes: () => { url: string }[]): Connect {
  return async function connect() {
    const cluster = createCluster({ rootNodes: rootNodes(), defaults: { socket: { connectTimeout: 2_000 } } });
    cluster.on("error", ignore);
    await cluster.connect();
    return {
      redis: cluster,
      release: async (prefix) => {
        await deleteKeys(await Promise.all(cluster.masters.map((master) => cluster.nodeClient(master))), prefix);
        await cluster.close();
      },
    };
  };
}

export function redisTarget(name: string, connect: Connect): ConformanceTarget {
  const opened = new Map<Store, { connection: TestConnection; prefix: string; ttlMs: number }>();
  const open = async (prefix: string, ttlMs: number): Promise<Store> => {
    const connection = await connect();
    const store = new RedisStore({ redis: connection.redis, prefix, ttlMs });
    opened.set(store, { connection, prefix, ttlMs });
    return store;
  };
  return {
    name,
    create: ({ ttlMs }) => open(`acp-test-${randomUUID()}`, ttlMs),
    peer: (store) => {
      const { prefix, ttlMs } = opened.get(store)!;
      return open(prefix, ttlMs);
    },
    async destroy(store) {
      const { connection, prefix } = opened.get(store)!;
      opened.delete(store);
      await store.close?.();
      await connection.release(prefix);
    },
  };
}

/** Deletes every key under `prefix` with SCAN + UNLINK, on each of `servers`. */
export async function deleteKeys(
  servers: { sendCommand(args: string[]): Promise<unknown> }[],
  prefix: string,
): Promise<void> {
  for (const server of servers) {
    let cursor = "0";
    do {
      const [next, keys] = (await server.sendCommand(["SCAN", cursor, "MATCH", `${prefix}:*`, "COUNT", "500"])) as [
        string,
        string[],
      ];
      cursor = next;
      // One key per UNLINK: on a cluster node the keys of one page span several slots.
      await Promise.all(keys.map((key) => server.sendCommand(["UNLINK", key])));
    } while (cursor !== "0");
  }
}

/** Errors also reject the command that met them; the event only must not crash the process. */
function ignore(): void {}

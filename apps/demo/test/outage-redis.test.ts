/**
 * A demo instance through Redis outages: a private redis-server, killed with SIGKILL and started
 * again on the same port with its append-only file, so the data written before the crash is back.
 * One more test runs the app in this process on a client that keeps node-redis' offline queue,
 * as users' own clients do by default.
 */
import { createApp, isTerminal, type StoredRun } from "@acp/core";
import { RedisStore } from "@acp/store-redis";
import { createClient } from "redis";
import { expect, it } from "vitest";
import { tokens } from "../src/agents.ts";
import {
  describeOutage,
  expectTokensLog,
  OUTAGE_MS,
  type RunJson,
  STORE_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  until,
  words,
} from "./support/outage-suite.ts";
import { type PrivateRedis, startPrivateRedis } from "./support/private-redis.ts";

/** The demo's default key prefix: the server is ours alone. */
const PREFIX = "acp";

/** A short-lived client of the server for the test's own checks. */
async function withClient<T>(
  server: PrivateRedis,
  body: (redis: ReturnType<typeof createClient>) => Promise<T>,
): Promise<T> {
  const redis = createClient({ url: server.url, socket: { reconnectStrategy: false, connectTimeout: 2000 } });
  redis.on("error", () => {});
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    redis.destroy();
  }
}

describeOutage(
  {
    name: "Redis (SIGKILL, restart with AOF persistence)",
    start: () => startPrivateRedis({ persistent: true }),
    env: (server) => ({ REDIS_URL: server.url, REDIS_PREFIX: PREFIX }),
    storedRunIds: (server) =>
      withClient(server, async (redis) => {
        const ids: string[] = [];
        for await (const keys of redis.scanIterator({ MATCH: `${PREFIX}:{run:*}:record`, COUNT: 500 })) {
          for (const key of keys) ids.push(/\{run:(.*)\}/.exec(String(key))![1]!);
        }
        return ids;
      }),
    listensFor: (server, runId) =>
      withClient(
        server,
        async (redis) => (await redis.pubSubChannels(`${PREFIX}:{run:${runId}}:changes`)).length === 1,
      ),
  },
  ({ server }) => {
    it(
      "stores each event once through an outage on a client with node-redis' offline queue, whose writes land late",
      async () => {
        // The client's defaults: commands wait in its queue while it reconnects, and go out after.
        const redis = createClient({
          url: server().url,
          socket: { reconnectStrategy: (retries: number) => Math.min(50 * retries, 500) },
        });
        redis.on("error", () => {});
        await redis.connect();
        const store = new RedisStore({ redis, prefix: "acp-queued" });
        const app = createApp([tokens], { store, storeTimeoutMs: STORE_TIMEOUT_MS, outageMs: OUTAGE_MS });
        try {
          const all = words(30);
          const response = await app.request("/runs", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              agent_name: "tokens",
              input: [{ role: "user", parts: [{ content: `${all.join(" ")} delay=100` }] }],
              mode: "async",
            }),
          });
          const runId = ((await response.json()) as RunJson).run_id;
          await until("the run to stream", async () =>
            (await store.readEvents(runId, 0)).length >= 8 ? true : undefined,
          );

          await server().kill();
          // Queued store calls time out meanwhile (a /ping that waited in the queue says so); after
          // the restart the queue is sent, and the scripts' EVALSHA meets an empty script cache.
          await until("a store call to time out", async () =>
            (await app.request("/ping")).status === 503 ? true : undefined,
          );
          await server().restart();

          const ended = await until("the run to end", async () => {
            const record: StoredRun | undefined = await store.getRun(runId);
            return record && isTerminal(record.run.status) ? record : undefined;
          });
          expect(ended.run.status).toBe("completed");
          expectTokensLog(
            (await store.readEvents(runId, 0)).map((stored) => stored.event),
            all,
            "completed",
          );
        } finally {
          await app.shutdown({ deadlineMs: 1000 });
          await store.close();
          redis.destroy();
        }
      },
      TEST_TIMEOUT_MS,
    );
  },
);

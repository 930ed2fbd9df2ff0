/**
 * Managed Redis services refuse CONFIG. This runs the whole suite on a private server where
 * CONFIG does not exist, so any use of it (to turn on keyspace notifications, say) fails a test.
 */
import assert from "node:assert/strict";
import { describeStoreConformance } from "@acp/core/testing";
import { afterAll, beforeAll, describe, it } from "vitest";
import { freePort, type RedisServer, startRedisServer, tempDir } from "./support/redis-server.ts";
import { connectClient, connectTo, redisTarget } from "./support/target.ts";

describe("RedisStore on a server without CONFIG", () => {
  let server: RedisServer | undefined;
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;

  beforeAll(async () => {
    dir = await tempDir("acp-redis-no-config");
    server = await startRedisServer(await freePort(), dir.path, ["--rename-command", "CONFIG", ""]);
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await dir?.remove();
  });

  const url = (): string => {
    if (!server) throw new Error("the private redis-server did not start");
    return server.url;
  };

  it("really has no CONFIG command", async () => {
    const redis = await connectClient(url());
    try {
      await assert.rejects(redis.sendCommand(["CONFIG", "GET", "notify-keyspace-events"]), /unknown command/i);
    } finally {
      await redis.close();
    }
  });

  describeStoreConformance(
    redisTarget("RedisStore (no CONFIG)", () => connectTo(url())()),
    { describe, it },
  );
});

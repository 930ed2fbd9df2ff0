/** What the conformance suite cannot see: the Redis side of RedisStore. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { StoreError } from "@acp/core";
import { historyItem, label, newRun } from "@acp/core/testing";
import { afterEach, describe, it } from "vitest";
import { RedisStore } from "../src/index.ts";
import { freePort, startRedisServer, tempDir } from "./support/redis-server.ts";
import { connectClient, deleteKeys, REDIS_URL } from "./support/target.ts";

/** Clients and prefixes opened by a test, released after it. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Client = Awaited<ReturnType<typeof connectClient>>;

async function open(options: { name?: string; reconnect?: boolean } = {}): Promise<{ redis: Client; prefix: string }> {
  const redis = await connectClient(REDIS_URL, options);
  const prefix = `acp-test-${randomUUID()}`;
  cleanups.push(async () => {
    await deleteKeys([redis], prefix);
    await redis.close();
  });
  return { redis, prefix };
}

async function keysOf(redis: Client, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of redis.scanIterator({ MATCH: `${prefix}:*` })) keys.push(...page.map(String));
  return keys.sort();
}

/** Connections named `name` that are subscribed to something, from CLIENT LIST. */
async function subscribedConnections(redis: Client, name: string): Promise<string[]> {
  const list = await redis.clientList();
  return list
    .filter((client) => client.name === name && (client.sub > 0 || (client.ssub ?? 0) > 0))
    .map((client) => String(client.id));
}

describe("RedisStore", () => {
  it("refuses bad options when it is built", async () => {
    const { redis } = await open();
    assert.throws(() => new RedisStore({ redis, prefix: "app{1}" }), /\[acp\] \[store-redis\] prefix/);
    assert.throws(() => new RedisStore({ redis, prefix: "" }), /prefix/);
    assert.throws(() => new RedisStore({ redis, ttlMs: 0 }), /ttlMs/);
    assert.throws(() => new RedisStore({ redis: undefined as unknown as Client }), /redis must be a client/);
  });

  it("keeps a run's keys, and a session's, under one hash tag, as the README lays them out", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const record = newRun("in-progress");
    const runId = record.run.run_id;
    const sessionId = randomUUID();
    const item = historyItem("hi");
    const itemId = item.id;
    await store.createRun(record, [label("a")]);
    // Not an end: the run stays listed in active-runs.
    await store.updateRun(runId, 1, { ...record, run: { ...record.run, status: "awaiting" } }, [], {
      history: { sessionId, items: [item] },
    });
    await store.heartbeat("instance-a", 60_000);
    assert.deepEqual(
      await keysOf(redis, prefix),
      [
        `${prefix}:active-runs`,
        `${prefix}:instance:instance-a`,
        `${prefix}:item:${itemId}`,
        `${prefix}:{run:${runId}}:events`,
        `${prefix}:{run:${runId}}:record`,
        `${prefix}:{session:${sessionId}}:history`,
        `${prefix}:{session:${sessionId}}:positions`,
        `${prefix}:{session:${sessionId}}:session`,
      ].sort(),
    );
  });

  it("gives every key it writes a TTL", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix, ttlMs: 60_000 });
    const record = newRun("created");
    await store.createRun(record, [label("created")]);
    await store.appendEvents(record.run.run_id, [label("more")]);
    const history = { sessionId: randomUUID(), items: [historyItem("hi")] };
    await store.updateRun(
      record.run.run_id,
      1,
      { ...record, run: { ...record.run, status: "in-progress" } },
      [label("running")],
      { history },
    );
    await store.heartbeat(randomUUID(), 60_000);
    await store.listActiveRuns();
    const keys = await keysOf(redis, prefix);
    assert.equal(keys.length, 8);
    for (const key of keys) {
      const ttl = Number(await redis.pTTL(key));
      assert.ok(ttl > 0 && ttl <= 60_000, `${key} has no TTL (PTTL ${ttl})`);
    }
  });

  it("drops from listActiveRuns the runs that expired or ended, once their entry is older than the TTL", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix, ttlMs: 200 });
    const expired = newRun("in-progress");
    await store.createRun(expired, []);
    assert.deepEqual(await store.listActiveRuns(), [expired.run.run_id]);
    await sleep(300);
    const alive = newRun("in-progress");
    await store.createRun(alive, []);
    assert.deepEqual(await store.listActiveRuns(), [alive.run.run_id]);
    assert.equal(
      await redis.zScore(`${prefix}:active-runs`, expired.run.run_id),
      null,
      "the expired run's entry was not removed",
    );
  });

  it("removes a run from listActiveRuns when it ends", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const record = newRun("in-progress");
    await store.createRun(record, []);
    await store.updateRun(record.run.run_id, 1, { ...record, run: { ...record.run, status: "completed" } }, []);
    assert.deepEqual(await store.listActiveRuns(), []);
  });

  it("runs its scripts again after the server forgot them (EVALSHA falls back to EVAL)", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const record = newRun("in-progress");
    await store.createRun(record, [label("before")]);
    // Other stores on this server just take the same fallback once.
    await redis.scriptFlush();
    assert.equal(await store.appendEvents(record.run.run_id, [label("after")]), 2);
    assert.equal((await store.updateRun(record.run.run_id, 1, record, [])).ok, true);
  });

  it("rejects with a StoreError that names the package and keeps the cause when the server is gone", async () => {
    const dir = await tempDir("acp-redis-gone");
    cleanups.push(() => dir.remove());
    const server = await startRedisServer(await freePort(), dir.path);
    cleanups.push(() => server.stop());
    const redis = await connectClient(server.url);
    const store = new RedisStore({ redis });
    await server.stop();
    const runId = randomUUID();
    for (const [operation, call] of [
      ["createRun", () => store.createRun(newRun("in-progress"), [])],
      ["getRun", () => store.getRun(runId)],
      ["appendEvents", () => store.appendEvents(runId, [label("lost")])],
      ["listActiveRuns", () => store.listActiveRuns()],
      ["subscribe", () => store.subscribe(runId, () => undefined)],
      ["ping", () => store.ping()],
    ] as const) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof StoreError, `${operation} did not reject with a StoreError`);
        assert.ok(error.message.startsWith(`[acp] [store-redis] ${operation} failed: `), error.message);
        assert.ok(error.cause instanceof Error, `${operation} lost the cause`);
        return true;
      });
    }
    await store.close();
    if (redis.isOpen) redis.destroy();
  });

  it("subscribes through one connection of its own, one Redis subscription per run, and closes only that", async () => {
    const name = `acp-test-${randomUUID()}`;
    const { redis, prefix } = await open({ name });
    const store = new RedisStore({ redis, prefix });
    const runs = [randomUUID(), randomUUID(), randomUUID()];
    const unsubscribes = [];
    for (const runId of runs)
      for (let i = 0; i < 2; i++) unsubscribes.push(await store.subscribe(runId, () => undefined));

    assert.equal((await subscribedConnections(redis, name)).length, 1, "not exactly one subscriber connection");
    const channels = runs.map((runId) => `${prefix}:{run:${runId}}:changes`);
    const counts = await redis.pubSubNumSub(channels);
    assert.deepEqual(Object.values(counts), [1, 1, 1], "not one Redis subscription per run");

    for (const unsubscribe of unsubscribes) await unsubscribe();
    assert.deepEqual(Object.values(await redis.pubSubNumSub(channels)), [0, 0, 0], "channels stayed subscribed");

    await store.close();
    assert.deepEqual(await subscribedConnections(redis, name), []);
    assert.equal(await redis.ping(), "PONG", "close() closed the client it was given");
  });

  it("wakes its listeners when the subscriber connection comes back, then keeps notifying", async () => {
    const name = `acp-test-${randomUUID()}`;
    // This test needs a client that reconnects; the subscriber inherits its options.
    const { redis, prefix } = await open({ name, reconnect: true });
    const store = new RedisStore({ redis, prefix });
    cleanups.push(() => store.close());
    const record = newRun("in-progress");
    await store.createRun(record, []);

    const calls: unknown[] = [];
    let wake: () => void = () => undefined;
    const nextCall = (): Promise<void> => new Promise((resolve) => (wake = resolve));
    await store.subscribe(record.run.run_id, (kind) => {
      calls.push(kind);
      wake();
    });
    const [subscriberId] = await subscribedConnections(redis, name);
    assert.ok(subscriberId, "no subscriber connection");

    let called = nextCall();
    await redis.clientKill({ filter: "ID", id: Number(subscriberId) });
    await called;
    assert.deepEqual(calls, [undefined], "the reconnect was not signalled as a change of unknown kind");

    called = nextCall();
    await store.appendEvents(record.run.run_id, [label("after the reconnect")]);
    await called;
    assert.deepEqual(calls, [undefined, "events"]);
  });
});

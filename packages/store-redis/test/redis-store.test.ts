/** What the conformance suite cannot see: the Redis side of RedisStore. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { StoreError, StoreRefusedError } from "@acp/core";
import { historyItem, label, newRun, stepRecord, writeHistory } from "@acp/core/testing";
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
  // A large COUNT: the server may hold many other keys, and SCAN's default of 10 per call crawls.
  const keys: string[] = [];
  for await (const page of redis.scanIterator({ MATCH: `${prefix}:*`, COUNT: 10_000 })) keys.push(...page.map(String));
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
    await store.recordStep(runId, 1, stepRecord(0, "a", 1));
    // Not an end: the run stays listed under its owner.
    await store.updateRun(runId, 1, { ...record, run: { ...record.run, status: "awaiting" } }, [], {
      history: { sessionId, items: [item] },
    });
    await store.heartbeat("instance-a", 60_000);
    assert.deepEqual(
      await keysOf(redis, prefix),
      [
        `${prefix}:owners`,
        `${prefix}:{owner:${record.owner}}:runs`,
        `${prefix}:instance:instance-a`,
        `${prefix}:item:${itemId}`,
        `${prefix}:{run:${runId}}:events`,
        `${prefix}:{run:${runId}}:record`,
        `${prefix}:{run:${runId}}:steps`,
        `${prefix}:{session:${sessionId}}:history`,
        `${prefix}:{session:${sessionId}}:ids`,
        `${prefix}:{session:${sessionId}}:summary`,
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
    await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1));
    const history = { sessionId: randomUUID(), items: [historyItem("hi")] };
    await store.updateRun(
      record.run.run_id,
      1,
      { ...record, run: { ...record.run, status: "in-progress" } },
      [label("running")],
      { history },
    );
    await store.heartbeat(randomUUID(), 60_000);
    await store.listOrphanedRuns();
    const keys = await keysOf(redis, prefix);
    assert.equal(keys.length, 12);
    for (const key of keys) {
      const ttl = Number(await redis.pTTL(key));
      // Item pointers live twice the TTL, so that appends need not refresh them (see scripts.ts).
      const most = key.includes(":item:") ? 120_000 : 60_000;
      assert.ok(ttl > 0 && ttl <= most, `${key} has no TTL, or a longer one (PTTL ${ttl})`);
    }
  });

  it("treats a run record without an epoch field (written by a contract-2 store) as epoch 1", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const record = newRun("in-progress");
    const runId = record.run.run_id;
    await store.createRun(record, []);
    const key = `${prefix}:{run:${runId}}:record`;
    assert.equal(await redis.hGet(key, "epoch"), "1");
    await redis.hDel(key, "epoch");
    assert.equal(await store.appendEvents(runId, [label(1)], 2), null);
    assert.equal(await store.appendEvents(runId, [label(1)], 1), 1);
    assert.equal(await store.recordStep(runId, 2, stepRecord(0, "a", 1)), false);
    assert.equal(await store.recordStep(runId, 1, stepRecord(0, "a", 1)), true);
    // A takeover writes the next epoch into the hash.
    assert.equal((await store.updateRun(runId, 1, { ...record, owner: "next", epoch: 2 }, [])).ok, true);
    assert.equal(await redis.hGet(key, "epoch"), "2");
    assert.equal(await store.appendEvents(runId, [label(2)], 1), null);
  });

  it("keeps per-owner sets, reading only those of dead owners, and drops entries of runs that ended or moved", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const live = { ...newRun("in-progress"), owner: "live" };
    const dead = { ...newRun("in-progress"), owner: "dead" };
    await store.heartbeat("live", 60_000);
    await store.createRun(live, []);
    await store.createRun(dead, []);
    assert.deepEqual((await redis.zRange(`${prefix}:owners`, 0, -1)).sort(), ["dead", "live"]);
    assert.deepEqual(await redis.zRange(`${prefix}:{owner:live}:runs`, 0, -1), [live.run.run_id]);
    assert.deepEqual(await store.listOrphanedRuns(), [dead.run.run_id]);

    // An entry left behind (its removal after the end failed) is dropped by the next search.
    await redis.zAdd(`${prefix}:{owner:dead}:runs`, { score: Date.now(), value: live.run.run_id });
    const ended = await store.updateRun(dead.run.run_id, 1, { ...dead, run: { ...dead.run, status: "failed" } }, []);
    assert.equal(ended.ok, true);
    assert.deepEqual(await redis.zRange(`${prefix}:{owner:dead}:runs`, 0, -1), [live.run.run_id]);
    assert.deepEqual(await store.listOrphanedRuns(), []);
    assert.deepEqual(await redis.zRange(`${prefix}:{owner:dead}:runs`, 0, -1), []);
  });

  it("appends to a session in O(1): no read of the session's items, their pointers refreshed once per TTL", async () => {
    const { redis, prefix } = await open({ name: `acp-test-${randomUUID()}` });
    const store = new RedisStore({ redis, prefix, ttlMs: 60_000 });
    const sessionId = randomUUID();
    const first = historyItem("first");
    await writeHistory(store, sessionId, [first]);
    const before = Number(await redis.pTTL(`${prefix}:item:${first.id}`));
    for (let turn = 0; turn < 20; turn++) await writeHistory(store, sessionId, [historyItem(`turn ${turn}`)]);
    // The first item's pointer outlives the session by itself: no append touched it.
    const after = Number(await redis.pTTL(`${prefix}:item:${first.id}`));
    assert.ok(after <= before, `the first item's pointer was refreshed by later appends (${before} -> ${after})`);
    assert.ok(after > 60_000, `the pointer does not outlive the session (${after} ms)`);
    assert.equal((await store.getSession(sessionId))?.itemIds.length, 21);
  });

  it("refuses with a StoreRefusedError when a script fails on what it finds, not as an outage", async () => {
    const { redis, prefix } = await open();
    const store = new RedisStore({ redis, prefix });
    const record = newRun("in-progress");
    await store.createRun(record, []);
    // A damaged log: the script's RPUSH meets a string.
    await redis.set(`${prefix}:{run:${record.run.run_id}}:events`, "not a list");
    await assert.rejects(store.appendEvents(record.run.run_id, [label("x")]), (error: unknown) => {
      assert.ok(error instanceof StoreRefusedError, `not a StoreRefusedError: ${String(error)}`);
      assert.match(error.message, /^\[acp\] \[store-redis\] appendEvents refused the value: WRONGTYPE/);
      return true;
    });
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
      ["listOrphanedRuns", () => store.listOrphanedRuns()],
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

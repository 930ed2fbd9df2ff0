/** The Redis implementation of core's `Store`. */

import type * as acp from "@acp/core";
import { attemptStore, isTerminal, resolveTtlMs, STORE_CONTRACT_VERSION } from "@acp/core";
import { type Commands, commandsOf, type RedisConnection } from "./connection.ts";
import { KeyLayout } from "./keys.ts";
import { scripts } from "./scripts.ts";
import { Subscriptions } from "./subscriptions.ts";

const PACKAGE = "store-redis";

/** Options of {@link RedisStore}; `ttlMs` comes from {@link acp.StoreOptions}. */
export interface RedisStoreOptions extends acp.StoreOptions {
  /**
   * A connected client from `createClient()` or `createCluster()` of the `redis` package
   * (node-redis v5). The store never closes it.
   */
  redis: RedisConnection;
  /**
   * Starts every key and channel name, so that several applications can share one Redis.
   * Must not contain `{` or `}`, which Redis Cluster reads as a hash tag.
   * @default "acp"
   */
  prefix?: string;
}

/**
 * A `Store` on Redis, shared by every server instance that uses the same Redis and prefix.
 * Atomic steps are Lua scripts over keys that share a hash tag, so it works on Redis Cluster too;
 * change notifications are plain (or, on a cluster, sharded) pub/sub messages.
 * @example
 * import { createClient } from "redis";
 * import { RedisStore } from "@acp/store-redis";
 *
 * const redis = await createClient({ url: process.env.REDIS_URL }).connect();
 * const store = new RedisStore({ redis, ttlMs: 24 * 60 * 60 * 1000 }); // runs and sessions live a day
 */
export class RedisStore implements acp.Store {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly #commands: Commands;
  readonly #keys: KeyLayout;
  readonly #ttl: string;
  readonly #ttlMs: number;
  readonly #subscriptions: Subscriptions;

  constructor({ redis, prefix = "acp", ttlMs }: RedisStoreOptions) {
    if (typeof redis !== "object" || redis === null) {
      throw new TypeError(
        `[acp] [${PACKAGE}] redis must be a client from createClient() or createCluster() of the "redis" package`,
      );
    }
    if (typeof prefix !== "string" || prefix === "" || /[{}]/.test(prefix)) {
      throw new TypeError(
        `[acp] [${PACKAGE}] prefix must be a non-empty string without "{" or "}", got ${JSON.stringify(prefix)}`,
      );
    }
    // Whole milliseconds: PX and PEXPIRE take integers.
    this.#ttlMs = Math.ceil(resolveTtlMs(ttlMs, PACKAGE));
    this.#commands = commandsOf(redis);
    this.#keys = new KeyLayout(prefix);
    this.#ttl = String(this.#ttlMs);
    this.#subscriptions = new Subscriptions(this.#commands);
  }

  createRun(record: acp.StoredRun, events: acp.Event[]): Promise<boolean> {
    return attemptStore(PACKAGE, "createRun", async () => {
      const runId = record.run.run_id;
      const ended = isTerminal(record.run.status);
      // Listed before it exists: a failure in between leaves an extra id (allowed), never an unlisted run.
      if (!ended) await this.#listActive(runId);
      const created = await scripts.createRun.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        JSON.stringify({ ...record, version: 1 }),
        ended ? "1" : "0",
        ...events.map((event) => JSON.stringify(event)),
      ]);
      return Number(created) === 1;
    });
  }

  getRun(runId: string): Promise<acp.StoredRun | undefined> {
    return attemptStore(PACKAGE, "getRun", async () => {
      const key = this.#keys.runRecord(runId);
      const json = await this.#commands.send(key, ["HGET", key, "json"]);
      return json == null ? undefined : parse<acp.StoredRun>(json);
    });
  }

  // `unobserved` is not needed: Redis publishes to a channel per run, which nobody listens to then.
  updateRun(
    runId: string,
    expectedVersion: number,
    next: acp.StoredRun,
    events: acp.Event[],
    options: acp.UpdateOptions = {},
  ): Promise<acp.UpdateResult> {
    return attemptStore(PACKAGE, "updateRun", async () => {
      // The session's keys may live in another cluster slot than the run's, so the history cannot
      // join the run's script: it goes first (a reader of the new record finds it), and the
      // script skips items it holds already (a retried update does not double them).
      const { history } = options;
      if (history) await this.#appendHistory(history.sessionId, history.items);
      const json = JSON.stringify({ ...next, version: expectedVersion + 1 });
      const ended = isTerminal(next.run.status);
      // Before the write, for the same reason as in createRun; a refused update leaves it as it was.
      if (!ended) await this.#listActive(runId);
      const reply = (await scripts.updateRun.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        String(expectedVersion),
        String(expectedVersion + 1),
        ended ? "1" : "0",
        json,
        ...events.map((event) => JSON.stringify(event)),
      ])) as [unknown, unknown?];
      if (Number(reply[0]) !== 1) {
        return { ok: false, record: reply[1] == null ? undefined : parse<acp.StoredRun>(reply[1]) };
      }
      if (ended) await this.#unlistActive(runId);
      // What was stored is `next` with the new version: no need to parse the JSON back.
      return { ok: true, record: { ...next, version: expectedVersion + 1 }, lastSeq: Number(reply[1]) };
    });
  }

  appendEvents(runId: string, events: acp.Event[]): Promise<number | null> {
    return attemptStore(PACKAGE, "appendEvents", async () => {
      const length = await scripts.appendEvents.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        ...events.map((event) => JSON.stringify(event)),
      ]);
      return length == null ? null : Number(length);
    });
  }

  readEvents(runId: string, afterSeq: number, limit?: number): Promise<acp.StoredEvent[]> {
    return attemptStore(PACKAGE, "readEvents", async () => {
      if (limit !== undefined && limit < 1) return [];
      // The event with seq n sits at list index n - 1, so "after afterSeq" starts at index afterSeq.
      const start = Math.max(0, Math.floor(afterSeq));
      const stop = limit === undefined ? -1 : start + Math.floor(limit) - 1;
      const key = this.#keys.runEvents(runId);
      const values = (await this.#commands.send(key, ["LRANGE", key, String(start), String(stop)])) as unknown[];
      return values.map((json, i) => ({ seq: start + i + 1, event: parse<acp.Event>(json) }));
    });
  }

  subscribe(runId: string, listener: acp.ChangeListener): Promise<acp.Unsubscribe> {
    return attemptStore(PACKAGE, "subscribe", async () => {
      const unsubscribe = await this.#subscriptions.add(this.#keys.runChannel(runId), listener);
      return (): Promise<void> => attemptStore(PACKAGE, "unsubscribe", unsubscribe);
    });
  }

  async #appendHistory(sessionId: string, items: acp.HistoryItem[]): Promise<void> {
    // Pointers first: a failure before the script leaves pointers to nothing (read as unknown
    // items), never items that cannot be found by id.
    await Promise.all(items.map((item) => this.#send(this.#keys.item(item.id), ["SET", sessionId, "PX", this.#ttl])));
    const ids = (await scripts.appendHistory.run(
      this.#commands,
      [this.#keys.session(sessionId), this.#keys.sessionHistory(sessionId), this.#keys.sessionPositions(sessionId)],
      [this.#ttl, ...items.flatMap((item) => [item.id, JSON.stringify(item)])],
    )) as unknown[];
    // The session's older items must live as long as the session: restart their pointers' TTL.
    // This costs one command per item of the session, pipelined by node-redis.
    const appended = new Set(items.map((item) => item.id));
    const older = ids.map(String).filter((id) => !appended.has(id));
    await Promise.all(older.map((id) => this.#send(this.#keys.item(id), ["PEXPIRE", this.#ttl])));
  }

  getHistory(sessionId: string): Promise<acp.HistoryItem[] | undefined> {
    return attemptStore(PACKAGE, "getHistory", async () => {
      const values = (await this.#send(this.#keys.sessionHistory(sessionId), ["LRANGE", "0", "-1"])) as unknown[];
      if (values.length > 0) return values.map((json) => parse<acp.HistoryItem>(json));
      // An empty list does not exist in Redis; the session key tells "empty" from "unknown".
      const exists = await this.#send(this.#keys.session(sessionId), ["EXISTS"]);
      return Number(exists) === 1 ? [] : undefined;
    });
  }

  getHistoryItem(itemId: string): Promise<acp.HistoryItem | undefined> {
    return attemptStore(PACKAGE, "getHistoryItem", async () => {
      const sessionId = await this.#send(this.#keys.item(itemId), ["GET"]);
      if (sessionId == null) return undefined;
      const session = String(sessionId);
      const json = await scripts.readHistoryItem.run(
        this.#commands,
        [this.#keys.sessionHistory(session), this.#keys.sessionPositions(session)],
        [itemId],
      );
      return json == null ? undefined : parse<acp.HistoryItem>(json);
    });
  }

  heartbeat(instanceId: string, leaseMs: number): Promise<void> {
    return attemptStore(PACKAGE, "heartbeat", async () => {
      const lease = String(Math.max(1, Math.ceil(leaseMs)));
      await this.#send(this.#keys.instance(instanceId), ["SET", "alive", "PX", lease]);
    });
  }

  isAlive(instanceId: string): Promise<boolean> {
    return attemptStore(PACKAGE, "isAlive", async () => {
      return Number(await this.#send(this.#keys.instance(instanceId), ["EXISTS"])) === 1;
    });
  }

  listActiveRuns(): Promise<string[]> {
    return attemptStore(PACKAGE, "listActiveRuns", async () => {
      const key = this.#keys.activeRuns;
      const entries = scoredMembers(await this.#commands.send(key, ["ZRANGE", key, "0", "-1", "WITHSCORES"]));
      // Scores are when an entry was last confirmed. Entries older than the TTL are checked:
      // dropped when their run expired or ended, confirmed again otherwise, so the index stays as
      // small as the set of live runs. Its key's TTL is restarted by every write and every listing.
      const cutoff = Date.now() - this.#ttlMs;
      const dropped = new Set<string>();
      await Promise.all(
        entries
          .filter(({ score }) => score < cutoff)
          .map(async ({ member: runId }) => {
            const record = this.#keys.runRecord(runId);
            const ended = await this.#commands.send(record, ["HGET", record, "ended"]);
            if (ended === "0") {
              await this.#commands.send(key, ["ZADD", key, "XX", String(Date.now()), runId]);
            } else {
              dropped.add(runId);
              await this.#commands.send(key, ["ZREM", key, runId]);
            }
          }),
      );
      if (entries.length > dropped.size) await this.#commands.send(key, ["PEXPIRE", key, this.#ttl]);
      return entries.map(({ member }) => member).filter((runId) => !dropped.has(runId));
    });
  }

  ping(): Promise<void> {
    return attemptStore(PACKAGE, "ping", () => this.#commands.ping());
  }

  /** Closes the store's own pub/sub connection, if it opened one; never the client it was given. */
  close(): Promise<void> {
    return attemptStore(PACKAGE, "close", () => this.#subscriptions.close());
  }

  /** Sends a one-key command: `args` follow the command name and the key. */
  #send(key: string, [command, ...args]: [string, ...string[]]): Promise<unknown> {
    return this.#commands.send(key, [command, key, ...args]);
  }

  #runKeys(runId: string): string[] {
    return [this.#keys.runRecord(runId), this.#keys.runEvents(runId)];
  }

  /** The arguments every run script starts with (see scripts.ts). */
  #runArgs(runId: string): string[] {
    return [this.#commands.sharded ? "1" : "0", this.#keys.runChannel(runId), this.#ttl];
  }

  async #listActive(runId: string): Promise<void> {
    const key = this.#keys.activeRuns;
    // Sent together on one connection, in this order; the TTL bounds an index nobody uses any more.
    await Promise.all([
      this.#commands.send(key, ["ZADD", key, String(Date.now()), runId]),
      this.#commands.send(key, ["PEXPIRE", key, this.#ttl]),
    ]);
  }

  async #unlistActive(runId: string): Promise<void> {
    const key = this.#keys.activeRuns;
    try {
      await this.#commands.send(key, ["ZREM", key, runId]);
    } catch {
      // The update itself applied, and reporting it as failed would mislead the caller. The index
      // may list ended runs (callers check with getRun); listActiveRuns drops this entry later.
    }
  }
}

function parse<T>(json: unknown): T {
  return JSON.parse(String(json)) as T;
}

/** ZRANGE … WITHSCORES answers a flat list in RESP2 and a list of pairs in RESP3. */
function scoredMembers(reply: unknown): { member: string; score: number }[] {
  const values = reply as unknown[];
  if (values.length > 0 && Array.isArray(values[0])) {
    return (values as [unknown, unknown][]).map(([member, score]) => ({
      member: String(member),
      score: Number(score),
    }));
  }
  const entries: { member: string; score: number }[] = [];
  for (let i = 0; i + 1 < values.length; i += 2)
    entries.push({ member: String(values[i]), score: Number(values[i + 1]) });
  return entries;
}

/** The Redis implementation of core's `Store`. */

import type * as acp from "@acp/core";
import { attemptStore, historyItemBytes, isTerminal, resolveTtlMs, StoreRefusedError } from "@acp/core";
import { type Commands, commandsOf, type RedisConnection } from "./connection.ts";
import { KeyLayout } from "./keys.ts";
import { ScriptFailed, scripts } from "./scripts.ts";
import { Subscriptions } from "./subscriptions.ts";

const PACKAGE = "store-redis";

/** Options of {@link RedisStore}; `ttlMs` and `logger` come from {@link acp.StoreOptions}. */
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
  // The contract this code implements, written out: importing core's constant would claim whatever
  // core is installed beside it. Raise it only with the implementation of the new contract.
  readonly contractVersion = 5;
  readonly #commands: Commands;
  readonly #keys: KeyLayout;
  readonly #ttl: string;
  readonly #ttlMs: number;
  readonly #subscriptions: Subscriptions;
  /** When this store last refreshed the runs of each instance it sent heartbeats for. */
  readonly #refreshedAt = new Map<string, number>();
  /** When this store last confirmed each instance in the owners set. */
  readonly #confirmedAt = new Map<string, number>();

  constructor({ redis, prefix = "acp", ttlMs, logger }: RedisStoreOptions) {
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
    this.#subscriptions = new Subscriptions(this.#commands, logger);
  }

  createRun(record: acp.StoredRun, events: acp.Event[], options: acp.CreateOptions = {}): Promise<boolean> {
    return this.#attempt("createRun", async () => {
      const runId = record.run.run_id;
      const ended = isTerminal(record.run.status);
      // First, as in updateRun (the session may live in another cluster slot); the script skips
      // items the session holds already, so a retried create does not double them.
      const { history } = options;
      if (history) await this.#appendHistory(history.sessionId, history.items);
      // Listed before it exists: a failure in between leaves an extra id (allowed), never an unlisted run.
      if (!ended) await this.#own(record.owner, runId);
      const created = await scripts.createRun.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        JSON.stringify({ ...record, version: 1 }),
        ended ? "1" : "0",
        record.owner,
        String(record.epoch ?? 1),
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
    return this.#attempt("updateRun", async () => {
      // The session's keys may live in another cluster slot than the run's, so the history cannot
      // join the run's script: it goes first (a reader of the new record finds it), and the
      // script skips items it holds already (a retried update does not double them).
      const { history } = options;
      if (history) await this.#appendHistory(history.sessionId, history.items);
      const json = JSON.stringify({ ...next, version: expectedVersion + 1 });
      const ended = isTerminal(next.run.status);
      // Before the write, for the same reason as in createRun; a refused update leaves an extra entry.
      if (!ended) await this.#own(next.owner, runId);
      const reply = (await scripts.updateRun.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        String(expectedVersion),
        String(expectedVersion + 1),
        ended ? "1" : "0",
        json,
        next.owner,
        String(next.epoch ?? 1),
        ...events.map((event) => JSON.stringify(event)),
      ])) as [unknown, unknown?, unknown?];
      if (Number(reply[0]) !== 1) {
        return { ok: false, record: reply[1] == null ? undefined : parse<acp.StoredRun>(reply[1]) };
      }
      const previousOwner = String(reply[2] ?? "");
      if (ended) await this.#disown(next.owner, runId);
      if (previousOwner !== "" && previousOwner !== next.owner) await this.#disown(previousOwner, runId);
      // What was stored is `next` with the new version: no need to parse the JSON back.
      return { ok: true, record: { ...next, version: expectedVersion + 1 }, lastSeq: Number(reply[1]) };
    });
  }

  appendEvents(runId: string, events: acp.Event[], epoch?: number): Promise<number | null> {
    return this.#attempt("appendEvents", async () => {
      const length = await scripts.appendEvents.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        epoch === undefined ? "" : String(epoch),
        ...events.map((event) => JSON.stringify(event)),
      ]);
      return length == null ? null : Number(length);
    });
  }

  getRunHeads(runIds: string[]): Promise<Map<string, acp.RunHead>> {
    return attemptStore(PACKAGE, "getRunHeads", async () => {
      const ids = [...new Set(runIds)];
      // Sent in one go: node-redis pipelines the commands of one tick into one write, so this is
      // one round trip (one per node of a cluster), however many runs; no script, since the runs'
      // keys live in different slots.
      const replies = await Promise.all(
        ids.flatMap((runId) => {
          const record = this.#keys.runRecord(runId);
          const events = this.#keys.runEvents(runId);
          return [
            this.#commands.send(record, ["HMGET", record, "version", "ended"]),
            this.#commands.send(events, ["LLEN", events]),
          ];
        }),
      );
      const heads = new Map<string, acp.RunHead>();
      for (const [i, runId] of ids.entries()) {
        const [version, ended] = replies[2 * i] as [unknown, unknown];
        if (version == null) continue;
        heads.set(runId, {
          version: Number(version),
          ended: String(ended) === "1",
          lastSeq: Number(replies[2 * i + 1]),
        });
      }
      return heads;
    });
  }

  recordStep(runId: string, epoch: number, step: acp.StepRecord): Promise<boolean> {
    return this.#attempt("recordStep", async () => {
      const stored = await scripts.recordStep.run(this.#commands, this.#runKeys(runId), [
        ...this.#runArgs(runId),
        String(epoch),
        String(step.index),
        JSON.stringify(step),
      ]);
      return Number(stored) === 1;
    });
  }

  readSteps(runId: string): Promise<acp.StepRecord[]> {
    return attemptStore(PACKAGE, "readSteps", async () => {
      // One HVALS, however many steps; the hash has no order, so they are sorted here.
      const values = (await this.#send(this.#keys.runSteps(runId), ["HVALS"])) as unknown[];
      return values.map((json) => parse<acp.StepRecord>(json)).sort((a, b) => a.index - b.index);
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
    // items), never items that cannot be found by id. They live twice the TTL (see APPEND_HISTORY).
    const pointerTtl = String(this.#ttlMs * 2);
    await Promise.all(items.map((item) => this.#send(this.#keys.item(item.id), ["SET", sessionId, "PX", pointerTtl])));
    const older = (await scripts.appendHistory.run(
      this.#commands,
      [
        this.#keys.session(sessionId),
        this.#keys.sessionHistory(sessionId),
        this.#keys.sessionPositions(sessionId),
        this.#keys.sessionIds(sessionId),
        this.#keys.sessionSummary(sessionId),
      ],
      [this.#ttl, ...items.flatMap((item) => [item.id, JSON.stringify(item), String(historyItemBytes(item))])],
    )) as unknown[];
    // Usually empty: once per TTL of the session's life, the older items' pointers need a new TTL.
    await Promise.all(older.map((id) => this.#send(this.#keys.item(String(id)), ["PEXPIRE", pointerTtl])));
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

  getSession(sessionId: string): Promise<acp.SessionSummary | undefined> {
    return this.#attempt("getSession", async () => {
      const reply = (await scripts.readSession.run(
        this.#commands,
        [
          this.#keys.session(sessionId),
          this.#keys.sessionIds(sessionId),
          this.#keys.sessionSummary(sessionId),
          this.#keys.sessionHistory(sessionId),
        ],
        [],
      )) as [unknown, unknown[]?, unknown?];
      const state = Number(reply[0]);
      if (state === 0) return undefined;
      if (state === 1) return { itemIds: (reply[1] ?? []).map(String), bytes: Number(reply[2] ?? 0) };
      // Written by a contract-1 store, until its next append builds the id list: read it whole.
      const history = (await this.getHistory(sessionId)) ?? [];
      const bytes = history.reduce((sum, item) => sum + historyItemBytes(item), 0);
      return { itemIds: history.map((item) => item.id), bytes };
    });
  }

  getHistoryItem(itemId: string): Promise<acp.HistoryItem | undefined> {
    return this.#attempt("getHistoryItem", async () => {
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
    return this.#attempt("heartbeat", async () => {
      const lease = String(Math.max(1, Math.ceil(leaseMs)));
      await this.#send(this.#keys.instance(instanceId), ["SET", "alive", "PX", lease]);
      // The instance's runs get a new TTL once a quarter of it has passed, not at every heartbeat:
      // one script per run it owns, so frequent heartbeats stay cheap.
      const now = Date.now();
      if (now - (this.#refreshedAt.get(instanceId) ?? 0) < this.#ttlMs / 4) return;
      await this.#refreshOwnedRuns(instanceId, now);
      this.#refreshedAt.set(instanceId, now);
    });
  }

  /** Restarts the TTL of the runs not ended that `instanceId` owns, and drops stale entries of its set. */
  async #refreshOwnedRuns(instanceId: string, now: number): Promise<void> {
    const setKey = this.#keys.ownerRuns(instanceId);
    const entries = scoredMembers(await this.#commands.send(setKey, ["ZRANGE", setKey, "0", "-1", "WITHSCORES"]));
    if (entries.length === 0) return;
    const results = await Promise.all(
      entries.map(({ member }) =>
        scripts.refreshOwnedRun.run(this.#commands, this.#runKeys(member), [instanceId, this.#ttl]),
      ),
    );
    const stale = entries
      .filter(({ score }, i) => {
        const result = Number(results[i]);
        // A missing run may be one being created right now: only an old entry is stale.
        return result === -1 || (result === 0 && score < now - this.#ttlMs);
      })
      .map(({ member }) => member);
    if (stale.length > 0) await this.#commands.send(setKey, ["ZREM", setKey, ...stale]);
    if (stale.length < entries.length) {
      await this.#commands.send(setKey, ["PEXPIRE", setKey, this.#ttl]);
      await this.#confirmOwner(instanceId, now, true);
    }
  }

  isAlive(instanceId: string): Promise<boolean> {
    return this.#attempt("isAlive", () => this.#isAlive(instanceId));
  }

  async #isAlive(instanceId: string): Promise<boolean> {
    return Number(await this.#send(this.#keys.instance(instanceId), ["EXISTS"])) === 1;
  }

  listOrphanedRuns(limit = Number.POSITIVE_INFINITY): Promise<string[]> {
    return this.#attempt("listOrphanedRuns", async () => {
      const now = Date.now();
      const owners = scoredMembers(
        await this.#commands.send(this.#keys.owners, ["ZRANGE", this.#keys.owners, "0", "-1", "WITHSCORES"]),
      );
      // Owner "" is nobody (a draining instance released the run): never alive.
      const alive = await Promise.all(owners.map(({ member }) => member !== "" && this.#isAlive(member)));
      const orphans: string[] = [];
      for (const [i, { member: owner }] of owners.entries()) {
        if (alive[i] || orphans.length >= limit) continue;
        orphans.push(...(await this.#orphansOf(owner, now, limit - orphans.length)));
      }
      if (orphans.length < limit) orphans.push(...(await this.#legacyOrphans(limit - orphans.length)));
      return orphans;
    });
  }

  /**
   * Up to `limit` runs not ended of the dead instance `owner`, read from its set; entries of runs
   * that ended, moved to another owner or expired long ago are dropped on the way. An owner with
   * no runs left is forgotten, unless it was confirmed since the search began.
   */
  async #orphansOf(owner: string, now: number, limit: number): Promise<string[]> {
    const setKey = this.#keys.ownerRuns(owner);
    const entries = scoredMembers(await this.#commands.send(setKey, ["ZRANGE", setKey, "0", "-1", "WITHSCORES"]));
    if (entries.length === 0) {
      const forgotten = await scripts.forgetOwner.run(this.#commands, [this.#keys.owners], [owner, String(now)]);
      // A run added in between is in the set: confirm the owner again so the search finds it.
      if (Number(forgotten) === 1 && Number(await this.#commands.send(setKey, ["EXISTS", setKey])) === 1)
        await this.#confirmOwner(owner, now, true);
      return [];
    }
    const orphans: string[] = [];
    const stale: string[] = [];
    // In batches, so that a small limit reads few records.
    for (let start = 0; start < entries.length && orphans.length < limit; start += 100) {
      const batch = entries.slice(start, start + 100);
      const states = await Promise.all(
        batch.map(({ member }) => {
          const key = this.#keys.runRecord(member);
          return this.#commands.send(key, ["HMGET", key, "ended", "owner"]) as Promise<[unknown, unknown]>;
        }),
      );
      for (const [j, { member, score }] of batch.entries()) {
        const [ended, recordOwner] = states[j]!;
        if (ended == null) {
          if (score < now - this.#ttlMs) stale.push(member);
        } else if (String(ended) !== "0" || String(recordOwner) !== owner) stale.push(member);
        else if (orphans.length < limit) orphans.push(member);
      }
    }
    if (stale.length > 0) await this.#commands.send(setKey, ["ZREM", setKey, ...stale]);
    return orphans;
  }

  /**
   * Orphans among the runs listed by a contract-1 store in its one sorted set, which this store
   * no longer writes: read until that set expires (a TTL after the last contract-1 write).
   */
  async #legacyOrphans(limit: number): Promise<string[]> {
    const key = this.#keys.legacyActiveRuns;
    const runIds = ((await this.#commands.send(key, ["ZRANGE", key, "0", "-1"])) as unknown[]).map(String);
    const orphans: string[] = [];
    for (const runId of runIds) {
      if (orphans.length >= limit) break;
      const recordKey = this.#keys.runRecord(runId);
      const json = await this.#commands.send(recordKey, ["HGET", recordKey, "json"]);
      const record = json == null ? undefined : parse<acp.StoredRun>(json);
      if (!record || isTerminal(record.run.status)) {
        await this.#commands.send(key, ["ZREM", key, runId]);
      } else if (!(await this.#isAlive(record.owner))) orphans.push(runId);
    }
    return orphans;
  }

  ping(): Promise<void> {
    return this.#attempt("ping", () => this.#commands.ping());
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
    return [this.#keys.runRecord(runId), this.#keys.runEvents(runId), this.#keys.runSteps(runId)];
  }

  /** The arguments every run script starts with (see scripts.ts). */
  #runArgs(runId: string): string[] {
    return [this.#commands.sharded ? "1" : "0", this.#keys.runChannel(runId), this.#ttl];
  }

  /**
   * Lists the run under `owner` before a write that leaves it not ended, and the owner among the
   * owners (after its set, so that forgetting an owner and this cannot cross: see #orphansOf).
   */
  async #own(owner: string, runId: string): Promise<void> {
    const now = Date.now();
    const before = await scripts.ownRun.run(
      this.#commands,
      [this.#keys.ownerRuns(owner)],
      [runId, this.#ttl, String(now)],
    );
    // An empty set may have been forgotten by another instance's search since we last confirmed.
    await this.#confirmOwner(owner, now, Number(before) === 0);
  }

  /**
   * Confirms `owner` in the owners set, scored `now`; skipped when this store did so less than a
   * quarter of the TTL ago (an owner is forgotten only a whole TTL after its last confirmation).
   */
  async #confirmOwner(owner: string, now: number, force: boolean): Promise<void> {
    if (!force && now - (this.#confirmedAt.get(owner) ?? 0) < this.#ttlMs / 4) return;
    const key = this.#keys.owners;
    await Promise.all([
      this.#commands.send(key, ["ZADD", key, String(now), owner]),
      this.#commands.send(key, ["PEXPIRE", key, this.#ttl]),
    ]);
    this.#confirmedAt.set(owner, now);
  }

  /** Drops the run from `owner`'s set after its end (or its move to another owner). */
  async #disown(owner: string, runId: string): Promise<void> {
    const key = this.#keys.ownerRuns(owner);
    try {
      await this.#commands.send(key, ["ZREM", key, runId]);
    } catch {
      // The update itself applied, and reporting it as failed would mislead the caller. The set
      // may hold runs that ended: the orphan search and heartbeats drop such entries.
    }
  }

  /**
   * Runs one operation: a script that Redis ran and that failed rejects with a
   * {@link StoreRefusedError} (the same call would fail again), anything else as a StoreError.
   */
  #attempt<T>(what: string, operation: () => Promise<T>): Promise<T> {
    return attemptStore(PACKAGE, what, async () => {
      try {
        return await operation();
      } catch (error) {
        if (!(error instanceof ScriptFailed)) throw error;
        throw new StoreRefusedError(PACKAGE, `${what} refused the value: ${error.message}`, { cause: error.reply });
      }
    });
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

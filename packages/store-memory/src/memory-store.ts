/**
 * A `Store` in process memory, for development, tests and single-instance servers. Values are
 * copied in and out as JSON would copy them, so it behaves exactly like the stores that serialise.
 */

import type * as acp from "@acp/core";
import {
  consoleLogger,
  historyItemBytes,
  isTerminal,
  ListenerSet,
  resolveTtlMs,
  StoreError,
  StoreRefusedError,
} from "@acp/core";
import { type Copies, copyAsJson } from "./copy-as-json.ts";
import { type Linked, RecencyList } from "./recency-list.ts";

const PACKAGE = "store-memory";

/** Options of {@link MemoryStore}; `ttlMs` and `logger` come from {@link acp.StoreOptions}. */
export interface MemoryStoreOptions extends acp.StoreOptions {
  /**
   * The most runs kept at once. Past it, the least recently written runs that have ended are
   * dropped; a run that has not ended is never dropped: when all of them are live, `createRun`
   * rejects with a `StoreError` (a 503 for the client) and the refusal is logged once per burst.
   * @default 10_000
   */
  maxRuns?: number;
  /**
   * The most sessions kept at once (each with its history). Past it, the least recently written
   * sessions are dropped. Without a bound, a busy server would keep every session for `ttlMs`.
   * @default 10_000
   */
  maxSessions?: number;
}

interface RunEntry extends Linked<RunEntry> {
  runId: string;
  record: acp.StoredRun;
  /** The log: the event with seq `n` is at index `n - 1`. */
  events: acp.Event[];
  /** The recorded steps of a durable run, by index; they live and die with the run. Made at the first step. */
  steps: Map<number, acp.StepRecord> | undefined;
  expiresAt: number;
  /** The owner under which the run is in the owned-runs index, while it has not ended. */
  indexedOwner: string | undefined;
}

interface SessionEntry extends Linked<SessionEntry> {
  sessionId: string;
  items: acp.HistoryItem[];
  /** The sum of historyItemBytes over the first `measured` items. */
  bytes: number;
  /**
   * How many items `bytes` counts: the size of an item is measured when the session is first
   * read after it came (most sessions of one run are never read, and measuring means serialising).
   */
  measured: number;
  expiresAt: number;
}

/** Where an item sits, so that it lives exactly as long as its session. */
interface ItemLocation {
  sessionId: string;
  index: number;
}

/** The sweep never runs more often than this, however short the TTL. */
const MIN_SWEEP_INTERVAL_MS = 1_000;
/** Nor less often than this, so memory is returned within a minute of expiry. */
const MAX_SWEEP_INTERVAL_MS = 60_000;

/**
 * A {@link acp.Store} in process memory. It does not share anything between processes: use it for
 * one instance, or for tests; use `@acp/store-redis` or `@acp/store-postgres` behind a load balancer.
 * @example
 * import { createApp } from "@acp/core";
 * import { MemoryStore } from "@acp/store-memory";
 *
 * const app = createApp([echo], { store: new MemoryStore({ ttlMs: 600_000 }) });
 */
export class MemoryStore implements acp.Store {
  // The contract this code implements, written out: importing core's constant would claim whatever
  // core is installed beside it. Raise it only with the implementation of the new contract.
  readonly contractVersion = 5;
  readonly #ttlMs: number;
  readonly #maxRuns: number;
  readonly #maxSessions: number;
  readonly #runs = new Map<string, RunEntry>();
  // Runs by last write, oldest first. With one TTL for all, this is also expiry order. Finished runs are kept apart so that the
  // size limit can drop them first.
  readonly #activeOrder = new RecencyList<RunEntry>();
  readonly #finishedOrder = new RecencyList<RunEntry>();
  readonly #sessions = new Map<string, SessionEntry>();
  /** Sessions by last write, oldest first, as for runs. */
  readonly #sessionOrder = new RecencyList<SessionEntry>();
  readonly #items = new Map<string, ItemLocation>();
  /** Lease expiry time of each instance. */
  readonly #heartbeats = new Map<string, number>();
  /** The runs not ended of each owner, so that heartbeats and the orphan search touch only those. */
  readonly #owned = new Map<string, Set<RunEntry>>();
  /** Set while createRun refuses runs because every kept run is live; the refusal is logged once per burst. */
  #refusing = false;
  readonly #logger: acp.Logger;
  readonly #listeners: ListenerSet;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;

  constructor({ ttlMs, maxRuns = 10_000, maxSessions = 10_000, logger = consoleLogger }: MemoryStoreOptions = {}) {
    this.#ttlMs = resolveTtlMs(ttlMs, PACKAGE);
    this.#logger = logger;
    this.#listeners = new ListenerSet(PACKAGE, logger);
    if (!(Number.isSafeInteger(maxRuns) && maxRuns > 0))
      throw new RangeError(`[acp] [${PACKAGE}] maxRuns must be a positive integer, got ${maxRuns}`);
    if (!(Number.isSafeInteger(maxSessions) && maxSessions > 0))
      throw new RangeError(`[acp] [${PACKAGE}] maxSessions must be a positive integer, got ${maxSessions}`);
    this.#maxRuns = maxRuns;
    this.#maxSessions = maxSessions;
    const interval = Math.min(Math.max(this.#ttlMs, MIN_SWEEP_INTERVAL_MS), MAX_SWEEP_INTERVAL_MS);
    this.#sweepTimer = setInterval(() => this.#sweep(), interval);
    // Expiry is also checked on every read; the timer only returns memory, so it must not keep the process alive.
    this.#sweepTimer.unref();
  }

  async createRun(record: acp.StoredRun, events: acp.Event[], { history }: acp.CreateOptions = {}): Promise<boolean> {
    const runId = record.run.run_id;
    if (this.#liveRun(runId)) return false;
    const shared: Copies = new Map();
    const [copied, copiedEvents, items] = copyOrRefuse("createRun", () => [
      copyAsJson(record, shared),
      events.map((event) => copyAsJson(event, shared)),
      history?.items.map((item) => copyAsJson(item, shared)),
    ]);
    this.#makeRoom();
    if (history && items) this.#appendItems(history.sessionId, items);
    // The copy is the store's own: it takes its version in place.
    copied.version = 1;
    const entry: RunEntry = {
      runId,
      record: copied,
      events: copiedEvents,
      steps: undefined,
      expiresAt: 0,
      indexedOwner: undefined,
      older: undefined,
      newer: undefined,
      list: undefined,
    };
    this.#runs.set(runId, entry);
    this.#touchRun(entry);
    return true;
  }

  async getRun(runId: string): Promise<acp.StoredRun | undefined> {
    const entry = this.#liveRun(runId);
    return entry && copyAsJson(entry.record);
  }

  async updateRun(
    runId: string,
    expectedVersion: number,
    next: acp.StoredRun,
    events: acp.Event[],
    { history }: acp.UpdateOptions = {},
  ): Promise<acp.UpdateResult> {
    const entry = this.#liveRun(runId);
    if (!entry || entry.record.version !== expectedVersion)
      return { ok: false, record: entry && copyAsJson(entry.record) };
    // Everything is copied before anything changes: a value that cannot be copied writes nothing.
    const shared: Copies = new Map();
    const [record, copied, items] = copyOrRefuse("updateRun", () => [
      { ...copyAsJson(next, shared), version: expectedVersion + 1 },
      events.map((event) => copyAsJson(event, shared)),
      history?.items.map((item) => copyAsJson(item, shared)),
    ]);
    if (history && items) this.#appendItems(history.sessionId, items);
    entry.record = record;
    for (const event of copied) entry.events.push(event);
    this.#touchRun(entry);
    this.#listeners.notify(runId, "record", expectedVersion + 1);
    // The stored record is a copy of `next`: handing back `next` itself shares nothing with the store.
    return { ok: true, record: { ...next, version: expectedVersion + 1 }, lastSeq: entry.events.length };
  }

  async appendEvents(runId: string, events: acp.Event[], epoch?: number): Promise<number | null> {
    const entry = this.#liveRun(runId);
    if (!entry || isTerminal(entry.record.run.status)) return null;
    // A former owner (another instance took the run over since) appends nothing.
    if (epoch !== undefined && (entry.record.epoch ?? 1) !== epoch) return null;
    if (events.length === 0) return entry.events.length;
    const copied = copyOrRefuse("appendEvents", () => events.map((event) => copyAsJson(event)));
    for (const event of copied) entry.events.push(event);
    // A run that keeps streaming is in use: an append keeps it (and its log) from expiring.
    this.#touchRun(entry);
    this.#listeners.notify(runId, "events");
    return entry.events.length;
  }

  async readEvents(runId: string, afterSeq: number, limit?: number): Promise<acp.StoredEvent[]> {
    const entry = this.#liveRun(runId);
    if (!entry) return [];
    const start = Math.max(0, Math.floor(afterSeq));
    const end = limit === undefined ? undefined : start + Math.max(0, limit);
    return entry.events.slice(start, end).map((event, i) => ({ seq: start + i + 1, event: copyAsJson(event) }));
  }

  async getRunHeads(runIds: string[]): Promise<Map<string, acp.RunHead>> {
    const heads = new Map<string, acp.RunHead>();
    for (const runId of runIds) {
      const entry = this.#liveRun(runId);
      if (entry === undefined) continue;
      const { version, run } = entry.record;
      heads.set(runId, { version, ended: isTerminal(run.status), lastSeq: entry.events.length });
    }
    return heads;
  }

  async recordStep(runId: string, epoch: number, step: acp.StepRecord): Promise<boolean> {
    const entry = this.#liveRun(runId);
    if (!entry || isTerminal(entry.record.run.status)) return false;
    if ((entry.record.epoch ?? 1) !== epoch || entry.steps?.has(step.index)) return false;
    const copied = copyOrRefuse("recordStep", () => copyAsJson(step));
    entry.steps ??= new Map();
    entry.steps.set(step.index, copied);
    this.#touchRun(entry);
    return true;
  }

  async readSteps(runId: string): Promise<acp.StepRecord[]> {
    const entry = this.#liveRun(runId);
    if (!entry?.steps) return [];
    return [...entry.steps.values()].sort((a, b) => a.index - b.index).map((step) => copyAsJson(step));
  }

  async subscribe(runId: string, listener: acp.ChangeListener): Promise<acp.Unsubscribe> {
    const remove = this.#listeners.add(runId, listener);
    return async function unsubscribe(): Promise<void> {
      remove();
    };
  }

  /** Appends items (copies already) to the session, creating it when missing. */
  #appendItems(sessionId: string, items: acp.HistoryItem[]): void {
    let session = this.#liveSession(sessionId);
    if (!session) {
      session = {
        sessionId,
        items: [],
        bytes: 0,
        measured: 0,
        expiresAt: 0,
        older: undefined,
        newer: undefined,
        list: undefined,
      };
      this.#sessions.set(sessionId, session);
    }
    for (const item of items) {
      this.#items.set(item.id, { sessionId, index: session.items.length });
      session.items.push(item);
    }
    session.expiresAt = Date.now() + this.#ttlMs;
    this.#sessionOrder.touch(session);
    while (this.#sessions.size > this.#maxSessions) this.#dropSession(this.#sessionOrder.oldest()!);
  }

  async getHistory(sessionId: string): Promise<acp.HistoryItem[] | undefined> {
    const session = this.#liveSession(sessionId);
    return session && copyAsJson(session.items);
  }

  async getSession(sessionId: string): Promise<acp.SessionSummary | undefined> {
    const session = this.#liveSession(sessionId);
    if (!session) return undefined;
    const { items } = session;
    for (; session.measured < items.length; session.measured++)
      session.bytes += historyItemBytes(items[session.measured]!);
    return { itemIds: items.map((item) => item.id), bytes: session.bytes };
  }

  async getHistoryItem(itemId: string): Promise<acp.HistoryItem | undefined> {
    const location = this.#items.get(itemId);
    if (!location) return undefined;
    const item = this.#liveSession(location.sessionId)?.items[location.index];
    if (item?.id !== itemId) {
      // Its session expired (or was re-created after expiring): the item went with it.
      this.#items.delete(itemId);
      return undefined;
    }
    return copyAsJson(item);
  }

  async heartbeat(instanceId: string, leaseMs: number): Promise<void> {
    this.#heartbeats.set(instanceId, Date.now() + leaseMs);
    // The instance's live runs must not expire under it: their TTL restarts.
    for (const entry of this.#owned.get(instanceId) ?? []) if (this.#liveRun(entry.runId)) this.#touchRun(entry);
  }

  async isAlive(instanceId: string): Promise<boolean> {
    const expiresAt = this.#heartbeats.get(instanceId);
    if (expiresAt === undefined) return false;
    if (expiresAt > Date.now()) return true;
    this.#heartbeats.delete(instanceId);
    return false;
  }

  async listOrphanedRuns(limit = Number.POSITIVE_INFINITY): Promise<string[]> {
    const now = Date.now();
    const orphans: string[] = [];
    for (const [owner, entries] of this.#owned) {
      // Owner "" is nobody: a draining instance released the run for another to adopt.
      if (owner !== "" && (this.#heartbeats.get(owner) ?? 0) > now) continue;
      for (const entry of entries) {
        if (orphans.length >= limit) return orphans;
        if (entry.expiresAt > now) orphans.push(entry.runId);
      }
    }
    return orphans;
  }

  async ping(): Promise<void> {}

  /** Stops the sweep timer. The data stays readable; expiry is then checked on read only. */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  /** The run's entry, or `undefined` when unknown or expired (an expired one is dropped now). */
  #liveRun(runId: string): RunEntry | undefined {
    const entry = this.#runs.get(runId);
    if (entry && entry.expiresAt <= Date.now()) {
      this.#dropRun(entry);
      return undefined;
    }
    return entry;
  }

  #liveSession(sessionId: string): SessionEntry | undefined {
    const session = this.#sessions.get(sessionId);
    if (session && session.expiresAt <= Date.now()) {
      this.#dropSession(session);
      return undefined;
    }
    return session;
  }

  /** Restarts the run's TTL and moves it to the most recently written end of its order. */
  #touchRun(entry: RunEntry): void {
    entry.expiresAt = Date.now() + this.#ttlMs;
    const finished = isTerminal(entry.record.run.status);
    (finished ? this.#activeOrder : this.#finishedOrder).delete(entry);
    (finished ? this.#finishedOrder : this.#activeOrder).touch(entry);
    this.#index(entry, finished ? undefined : entry.record.owner);
  }

  /** Moves the run to the owned-runs index of `owner`, or out of it with `undefined`. */
  #index(entry: RunEntry, owner: string | undefined): void {
    if (entry.indexedOwner === owner) return;
    if (entry.indexedOwner !== undefined) {
      const entries = this.#owned.get(entry.indexedOwner);
      entries?.delete(entry);
      if (entries?.size === 0) this.#owned.delete(entry.indexedOwner);
    }
    entry.indexedOwner = owner;
    if (owner === undefined) return;
    let entries = this.#owned.get(owner);
    if (!entries) {
      entries = new Set();
      this.#owned.set(owner, entries);
    }
    entries.add(entry);
  }

  #dropRun(entry: RunEntry): void {
    this.#runs.delete(entry.runId);
    this.#activeOrder.delete(entry);
    this.#finishedOrder.delete(entry);
    this.#index(entry, undefined);
    // A reader waiting on this run wakes up, reads, and finds it gone instead of waiting forever.
    this.#listeners.notify(entry.runId, undefined);
  }

  #dropSession(session: SessionEntry): void {
    const { sessionId } = session;
    this.#sessions.delete(sessionId);
    this.#sessionOrder.delete(session);
    for (const item of session.items)
      if (this.#items.get(item.id)?.sessionId === sessionId) this.#items.delete(item.id);
  }

  /**
   * Makes room for one more run: drops what has expired, then the least recently written runs
   * that have ended. A run that has not ended is never dropped (its agent is still working or
   * waiting for a person): when only those are left, the new run is refused.
   * @throws StoreError when `maxRuns` runs are live
   */
  #makeRoom(): void {
    if (this.#runs.size < this.#maxRuns) {
      this.#refusing = false;
      return;
    }
    this.#sweep();
    while (this.#runs.size >= this.#maxRuns) {
      const oldest = this.#finishedOrder.oldest();
      if (oldest === undefined) break;
      this.#dropRun(oldest);
    }
    if (this.#runs.size < this.#maxRuns) {
      this.#refusing = false;
      return;
    }
    const error = new StoreError(
      PACKAGE,
      `createRun refused: ${this.#runs.size} runs have not ended (maxRuns ${this.#maxRuns}); ` +
        "no run is dropped before it ends, so new runs wait until some end (raise maxRuns for more)",
    );
    // One line per burst of refusals, not one per request.
    if (!this.#refusing)
      this.#logger.error(
        { err: error },
        `[${PACKAGE}] createRun refuses new runs: all ${this.#maxRuns} kept runs are live`,
      );
    this.#refusing = true;
    throw error;
  }

  /** Drops what has expired. Orders are by last write and the TTL is the same for all, so each walk stops at the first live entry. */
  #sweep(): void {
    const now = Date.now();
    for (const order of [this.#activeOrder, this.#finishedOrder]) {
      for (const entry of order) {
        if (entry.expiresAt > now) break;
        this.#dropRun(entry);
      }
    }
    for (const session of this.#sessionOrder) {
      if (session.expiresAt > now) break;
      this.#dropSession(session);
    }
    for (const [instanceId, expiresAt] of this.#heartbeats) if (expiresAt <= now) this.#heartbeats.delete(instanceId);
  }
}

/**
 * Runs `copy` and turns its failure (a BigInt, a cycle: a value JSON cannot hold) into a
 * {@link StoreRefusedError}, before anything is written.
 */
function copyOrRefuse<T>(what: string, copy: () => T): T {
  try {
    return copy();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreRefusedError(PACKAGE, `${what} refused the value: ${reason}`, { cause: error });
  }
}

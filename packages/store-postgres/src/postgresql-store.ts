/**
 * `PostgreSQLStore`: the {@link Store} of `@acp/core` on PostgreSQL through postgres.js.
 */

import type {
  ChangeListener,
  CreateOptions,
  Event,
  HistoryAppend,
  HistoryItem,
  RunHead,
  SessionSummary,
  StepRecord,
  Store,
  StoredEvent,
  StoredRun,
  StoreError,
  StoreOptions,
  Unsubscribe,
  UpdateOptions,
  UpdateResult,
} from "@acp/core";
import { attemptStore, consoleLogger, isTerminal, resolveTtlMs, wrapStoreError } from "@acp/core";
import type { Client } from "./client.ts";
import { assertIdentifier } from "./names.ts";
import { NotificationSender } from "./notification-sender.ts";
import { eventsJson, type NewRun, Queries, type RunUpdate, recordJson, toStepRecord, toStoredRun } from "./queries.ts";
import { refusalOf } from "./refusal.ts";
import { notification, RunNotifier } from "./run-notifier.ts";
import { migrateSchema, type Tables, tablesOf } from "./schema.ts";

const PACKAGE = "store-postgres";
/** The longest delay Node.js timers accept. */
const MAX_TIMER_MS = 2_147_483_647;

/** Options of {@link PostgreSQLStore}; `ttlMs` and `logger` come from {@link StoreOptions}. */
export interface PostgreSQLStoreOptions extends StoreOptions {
  /**
   * A postgres.js instance (`postgres(url)`) without `transform` options. The store runs its
   * queries on it and never ends it; LISTEN takes one extra connection besides its pool.
   */
  sql: Client;
  /**
   * Name of the table of runs, sessions and heartbeats; `<table>_events`, `<table>_history`,
   * `<table>_steps` and `<table>_schema` are created beside it. Letters, digits and underscores, at most 55 characters.
   * @default "acp_store"
   */
  table?: string;
  /**
   * Channel of the change notifications (`pg_notify`); instances sharing `table` must share it.
   * @default "acp_update"
   */
  channel?: string;
  /**
   * How often expired rows are deleted, in milliseconds; `0` turns the timer off (reads ignore
   * expired rows anyway, and {@link PostgreSQLStore.sweep} can be called by hand).
   * @default 60_000 (one minute)
   */
  sweepIntervalMs?: number;
  /**
   * Receives failures of the background sweep, which has no caller to reject.
   * @default logs them with `logger.error`
   */
  onSweepError?: (error: StoreError) => void;
  /**
   * Receives failures of change notifications. A write resolves once it has committed, and its
   * notification follows on its own; when that fails, subscribers elsewhere hear of the change
   * late (at their next read), never lose it.
   * @default logs them with `logger.error`
   */
  onNotifyError?: (error: StoreError) => void;
}

/**
 * A {@link Store} on PostgreSQL, shared by every ACP server instance that opens the same table.
 *
 * Each write is one statement (a rare takeover of an expired row takes a short transaction).
 * Once a write of a run has committed, it resolves, and its `pg_notify` follows in a statement
 * of its own, shared with the notifications of concurrent writes; subscribers in all instances
 * hear of it then. Each store holds a single LISTEN. An event costs one INSERT, whatever the
 * length of its run's log. The schema is created by {@link PostgreSQLStore.migrate}, which runs
 * by itself before the first operation.
 * @example
 * ```ts
 * import postgres from "postgres";
 * import { PostgreSQLStore } from "@acp/store-postgres";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const store = new PostgreSQLStore({ sql, ttlMs: 24 * 60 * 60 * 1000 }); // runs and sessions live a day
 * await store.migrate(); // optional: surfaces schema problems at start-up
 * ```
 */
export class PostgreSQLStore implements Store {
  // The contract this code implements, written out: importing core's constant would claim whatever
  // core is installed beside it. Raise it only with the implementation of the new contract.
  readonly contractVersion = 5;
  readonly #sql: Client;
  readonly #tables: Tables;
  readonly #queries: Queries;
  readonly #sweepIntervalMs: number;
  readonly #onSweepError: (error: StoreError) => void;
  readonly #onNotifyError: (error: StoreError) => void;
  readonly #notifier: RunNotifier;
  readonly #notifications: NotificationSender;
  #migration: Promise<void> | undefined;
  #migrated = false;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  #closed = false;

  constructor({
    sql,
    table = "acp_store",
    channel = "acp_update",
    ttlMs,
    sweepIntervalMs = 60_000,
    logger = consoleLogger,
    onSweepError = (error) => logger.error({ err: error }, `[${PACKAGE}] the background sweep failed`),
    onNotifyError = (error) => logger.error({ err: error }, `[${PACKAGE}] a change notification failed`),
  }: PostgreSQLStoreOptions) {
    assertPostgresJs(sql);
    assertIdentifier("table", table);
    assertIdentifier("channel", channel);
    const resolvedTtlMs = resolveTtlMs(ttlMs, PACKAGE);
    // setInterval turns longer delays into 1 ms, which would sweep without pause.
    if (!(Number.isFinite(sweepIntervalMs) && sweepIntervalMs >= 0 && sweepIntervalMs <= MAX_TIMER_MS)) {
      throw new RangeError(
        `[acp] [${PACKAGE}] sweepIntervalMs must be 0 or a number of milliseconds up to ${MAX_TIMER_MS} (got ${sweepIntervalMs})`,
      );
    }
    this.#sql = sql;
    this.#tables = tablesOf(sql, table);
    this.#queries = new Queries(this.#tables, resolvedTtlMs);
    this.#sweepIntervalMs = sweepIntervalMs;
    this.#onSweepError = onSweepError;
    this.#onNotifyError = onNotifyError;
    this.#notifier = new RunNotifier(sql, channel, logger);
    this.#notifications = new NotificationSender(sql, channel);
  }

  /**
   * Creates the tables, or upgrades them, to the schema this version needs. Safe to call from
   * several instances at once (they queue on an advisory lock) and more than once. Called
   * by the first operation when the application does not call it; a failure is retried by the
   * next call.
   */
  migrate(): Promise<void> {
    if (!this.#migration) {
      const migration = attemptStore(PACKAGE, "migrate", () => migrateSchema(this.#sql, this.#tables));
      this.#migration = migration;
      migration.then(
        () => {
          this.#migrated = true;
          this.#startSweeping();
        },
        () => {
          if (this.#migration === migration) this.#migration = undefined;
        },
      );
    }
    return this.#migration;
  }

  async createRun(record: StoredRun, events: Event[], { history }: CreateOptions = {}): Promise<boolean> {
    const run: NewRun = {
      runId: record.run.run_id,
      owner: record.owner,
      epoch: record.epoch ?? 1,
      value: recordJson(record),
      ended: isTerminal(record.run.status),
      events: eventsJson(events),
      eventCount: events.length,
    };
    const queries = this.#queries;
    return this.#withSchema("createRun", async () => {
      // No notification: nobody can be subscribed to a run id that did not exist.
      const [inserted] = await queries.insertRun(this.#sql, run, history);
      if (inserted?.created === 1) {
        // An expired session that the sweep has not deleted yet takes no items: it starts over.
        if (history && inserted.session === 0) await this.#restartExpiredSession(history);
        return true;
      }
      // The id is taken: by a live run (the usual case), or by an expired one not swept yet.
      let sessionExpired = false;
      const takenOver = await this.#sql.begin(async function takeOverExpiredRun(tx): Promise<boolean> {
        const rows = await queries.takeOverExpiredRun(tx, run);
        if (rows.length === 0) return false;
        await queries.replaceEvents(tx, run);
        if (history) sessionExpired = (await queries.appendHistory(tx, history))[0]?.session === 0;
        return true;
      });
      if (history && sessionExpired) await this.#restartExpiredSession(history);
      // Readers of the expired run, if any, learn that it was replaced.
      if (takenOver) this.#notify(notification("record", run.runId, 1));
      return takenOver;
    });
  }

  async getRun(runId: string): Promise<StoredRun | undefined> {
    return this.#withSchema("getRun", () => this.#readRun(runId));
  }

  async updateRun(
    runId: string,
    expectedVersion: number,
    next: StoredRun,
    events: Event[],
    { history, unobserved = false }: UpdateOptions = {},
  ): Promise<UpdateResult> {
    const value = recordJson(next);
    return this.#withSchema("updateRun", async () => {
      const update: RunUpdate = {
        expectedVersion,
        owner: next.owner,
        epoch: next.epoch ?? 1,
        value,
        ended: isTerminal(next.run.status),
        events,
        history,
      };
      const [updated] = await this.#queries.updateRun(this.#sql, runId, update);
      // An expired session that the sweep has not deleted yet takes no items: it starts over.
      if (updated && history && updated.session === 0) await this.#restartExpiredSession(history);
      if (updated) {
        // Every instance hears every notification on the one channel: skip those nobody can want.
        if (!unobserved) this.#notify(notification("record", runId, updated.version));
        // What was stored is `next`: a shallow copy with the new version spares the database
        // sending it back and us parsing it (the caller's nested objects are its own anyway).
        const record = { ...next, version: updated.version };
        return { ok: true, record, lastSeq: updated.last };
      }
      return { ok: false, record: await this.#readRun(runId) };
    });
  }

  async appendEvents(runId: string, events: Event[], epoch?: number): Promise<number | null> {
    return this.#withSchema("appendEvents", async () => {
      const [appended] = await this.#queries.appendEvents(this.#sql, runId, events, epoch);
      if (!appended) return null;
      this.#notify(notification("events", runId));
      return appended.last;
    });
  }

  async getRunHeads(runIds: string[]): Promise<Map<string, RunHead>> {
    return this.#withSchema("getRunHeads", async () => {
      const heads = new Map<string, RunHead>();
      if (runIds.length === 0) return heads;
      const rows = await this.#queries.readRunHeads(this.#sql, [...new Set(runIds)]);
      for (const { id, version, ended, last } of rows) heads.set(id, { version, ended, lastSeq: last });
      return heads;
    });
  }

  async recordStep(runId: string, epoch: number, step: StepRecord): Promise<boolean> {
    return this.#withSchema("recordStep", async () => {
      // No notification: nobody waits for steps.
      const [row] = await this.#queries.recordStep(this.#sql, runId, epoch, step);
      return row?.stored === 1;
    });
  }

  async readSteps(runId: string): Promise<StepRecord[]> {
    return this.#withSchema("readSteps", async () => {
      const rows = await this.#queries.readSteps(this.#sql, runId);
      return rows.map(toStepRecord);
    });
  }

  async readEvents(runId: string, afterSeq: number, limit?: number): Promise<StoredEvent[]> {
    return this.#withSchema("readEvents", async () => {
      const rows = await this.#queries.readEvents(this.#sql, runId, afterSeq, limit);
      return rows.map(({ seq, event }) => ({ seq, event }));
    });
  }

  async subscribe(runId: string, listener: ChangeListener): Promise<Unsubscribe> {
    return attemptStore(PACKAGE, "subscribe", () => this.#notifier.subscribe(runId, listener));
  }

  /** Appends to a session that expired but is not swept yet: it starts over, without its old items. */
  async #restartExpiredSession(history: HistoryAppend): Promise<void> {
    const queries = this.#queries;
    await this.#sql.begin(async function restartExpiredSession(tx): Promise<void> {
      await queries.restartExpiredSession(tx, history);
    });
  }

  async getHistory(sessionId: string): Promise<HistoryItem[] | undefined> {
    return this.#withSchema("getHistory", async () => {
      const rows = await this.#queries.readHistory(this.#sql, sessionId);
      if (rows.length === 0) return undefined;
      return rows.flatMap(({ item, message }) => (item === null || message === null ? [] : [{ id: item, message }]));
    });
  }

  async getSession(sessionId: string): Promise<SessionSummary | undefined> {
    return this.#withSchema("getSession", async () => {
      const rows = await this.#queries.readSession(this.#sql, sessionId);
      if (rows.length === 0) return undefined;
      const summary: SessionSummary = { itemIds: [], bytes: 0 };
      for (const { item, bytes } of rows) {
        if (item === null) continue;
        summary.itemIds.push(item);
        summary.bytes += bytes ?? 0;
      }
      return summary;
    });
  }

  async getHistoryItem(itemId: string): Promise<HistoryItem | undefined> {
    return this.#withSchema("getHistoryItem", async () => {
      const [row] = await this.#queries.readHistoryItem(this.#sql, itemId);
      return row?.item != null && row.message != null ? { id: row.item, message: row.message } : undefined;
    });
  }

  async heartbeat(instanceId: string, leaseMs: number): Promise<void> {
    await this.#withSchema("heartbeat", () => this.#queries.heartbeat(this.#sql, instanceId, leaseMs));
  }

  async isAlive(instanceId: string): Promise<boolean> {
    return this.#withSchema("isAlive", async () => {
      const rows = await this.#queries.isAlive(this.#sql, instanceId);
      return rows.length > 0;
    });
  }

  async listOrphanedRuns(limit?: number): Promise<string[]> {
    return this.#withSchema("listOrphanedRuns", async () => {
      const rows = await this.#queries.listOrphanedRuns(this.#sql, limit);
      return rows.map((row) => row.id);
    });
  }

  async ping(): Promise<void> {
    await attemptStore(PACKAGE, "ping", () => this.#queries.ping(this.#sql));
  }

  /**
   * Deletes expired runs with their events, expired sessions with their history, and expired
   * heartbeats. Runs on a timer (see `sweepIntervalMs`); when another instance is sweeping the
   * same tables this call does nothing, so instances never wait on each other's sweep.
   * @returns how many runs, sessions and heartbeats it deleted
   */
  async sweep(): Promise<number> {
    const queries = this.#queries;
    return this.#withSchema("sweep", () =>
      this.#sql.begin(function sweepInTransaction(tx): Promise<number> {
        return queries.sweep(tx);
      }),
    );
  }

  /**
   * Stops the sweep timer and the LISTEN of this store once the notifications of its writes
   * have gone out; leaves the `sql` instance open.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#notifications.flush();
    await attemptStore(PACKAGE, "close", () => this.#notifier.close());
  }

  /**
   * Sends a change notification after a committed write, without holding the write up: the
   * writer's caller does not need it, and waiting for it would add a round trip to every write.
   */
  #notify(payload: string): void {
    this.#notifications
      .send(payload)
      .catch((error: unknown) => this.#onNotifyError(wrapStoreError(PACKAGE, "notification", error)));
  }

  async #readRun(runId: string): Promise<StoredRun | undefined> {
    const [row] = await this.#queries.readRun(this.#sql, runId);
    return row ? toStoredRun(row) : undefined;
  }

  #startSweeping(): void {
    if (this.#closed || this.#sweepTimer || this.#sweepIntervalMs === 0) return;
    this.#sweepTimer = setInterval(() => this.#sweepInBackground(), this.#sweepIntervalMs);
    // The sweep is housekeeping: it must not keep the process alive.
    this.#sweepTimer.unref();
  }

  async #sweepInBackground(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      await this.sweep();
    } catch (error) {
      this.#onSweepError(error as StoreError);
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Runs `operation` once the schema is in place (migrating first when needed) and rejects with
   * its failure as a {@link StoreError} that keeps the cause, or a `StoreRefusedError` when
   * PostgreSQL refused the value (see {@link refusalOf}).
   */
  async #withSchema<T>(what: string, operation: () => Promise<T>): Promise<T> {
    // Once the schema is in place, operations skip the wait for it. A failed migration is a
    // StoreError already, which attemptStore passes on as it is.
    return attemptStore(PACKAGE, what, async () => {
      if (!this.#migrated) await this.migrate();
      try {
        return await operation();
      } catch (error) {
        if (!isMissingTable(error)) throw refusalOf(what, error) ?? error;
      }
      // Someone dropped the tables after this store migrated: create them again, then retry once.
      this.#migrated = false;
      this.#migration = undefined;
      await this.migrate();
      try {
        return await operation();
      } catch (error) {
        throw refusalOf(what, error) ?? error;
      }
    });
  }
}

/** SQLSTATE 42P01 undefined_table: the store's tables were dropped behind its back. */
function isMissingTable(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "42P01";
}

function assertPostgresJs(sql: unknown): asserts sql is Client {
  const candidate = sql as Partial<Client> | undefined;
  if (typeof sql !== "function" || typeof candidate?.begin !== "function" || typeof candidate.listen !== "function") {
    throw new TypeError(`[acp] [${PACKAGE}] sql must be a postgres.js instance: postgres(url)`);
  }
  const transform = candidate.options?.transform;
  if (transform && (transform.column.from || transform.column.to || transform.value.from || transform.row.from)) {
    throw new TypeError(
      `[acp] [${PACKAGE}] sql must not transform columns, values or rows (as postgres.camel does): ` +
        "the store reads its own columns and JSON; give it a plain postgres(url) instance",
    );
  }
}

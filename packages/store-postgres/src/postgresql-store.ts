/**
 * `PostgreSQLStore`: the {@link Store} of `@acp/core` on PostgreSQL through postgres.js.
 */
import {
  DEFAULT_TTL_MS,
  isTerminal,
  StoreError,
  type ChangeListener,
  type Event,
  type HistoryAppend,
  type HistoryItem,
  type Store,
  type StoredEvent,
  type StoredRun,
  type Unsubscribe,
  type UpdateOptions,
  type UpdateResult,
} from "@acp/core";
import type { PendingQuery, Row, Sql } from "postgres";
import { assertIdentifier } from "./names.ts";
import { NotificationSender } from "./notification-sender.ts";
import { notification, RunNotifier } from "./run-notifier.ts";
import { LOCK_NAMESPACE, migrateSchema, tablesOf, type Tables } from "./schema.ts";

const PACKAGE = "store-postgres";
/** The longest delay Node.js timers accept. */
const MAX_TIMER_MS = 2_147_483_647;

/** Options of {@link PostgreSQLStore}. */
export interface PostgreSQLStoreOptions {
  /**
   * A postgres.js instance (`postgres(url)`) without `transform` options. The store runs its
   * queries on it and never ends it; LISTEN takes one extra connection besides its pool.
   */
  sql: Sql<any>;
  /**
   * Name of the table of runs, sessions and heartbeats; `<table>_events`, `<table>_history` and
   * `<table>_schema` are created beside it. Letters, digits and underscores, at most 55 characters.
   * @default "acp_store"
   */
  table?: string;
  /**
   * Channel of the change notifications (`pg_notify`); instances sharing `table` must share it.
   * @default "acp_update"
   */
  channel?: string;
  /**
   * How long runs, their events and sessions live after their last write, in milliseconds.
   * @default 3_600_000 (one hour)
   */
  ttlMs?: number;
  /**
   * How often expired rows are deleted, in milliseconds; `0` turns the timer off (reads ignore
   * expired rows anyway, and {@link PostgreSQLStore.sweep} can be called by hand).
   * @default 60_000 (one minute)
   */
  sweepIntervalMs?: number;
  /**
   * Receives failures of the background sweep, which has no caller to reject.
   * @default logs them with `console.error`
   */
  onSweepError?: (error: StoreError) => void;
  /**
   * Receives failures of change notifications. A write resolves once it has committed, and its
   * notification follows on its own; when that fails, subscribers elsewhere hear of the change
   * late (at their next read), never lose it.
   * @default logs them with `console.error`
   */
  onNotifyError?: (error: StoreError) => void;
}

interface RunRow {
  value: Omit<StoredRun, "version">;
  version: number;
}

interface HistoryRow {
  item: string | null;
  message: HistoryItem["message"] | null;
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
 * const store = new PostgreSQLStore({ sql, ttlMs: 24 * 3_600_000 });
 * await store.migrate(); // optional: surfaces schema problems at start-up
 * ```
 */
export class PostgreSQLStore implements Store {
  readonly #sql: Sql<any>;
  readonly #tables: Tables;
  readonly #ttlMs: number;
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
    ttlMs = DEFAULT_TTL_MS,
    sweepIntervalMs = 60_000,
    onSweepError = reportSweepError,
    onNotifyError = reportNotifyError,
  }: PostgreSQLStoreOptions) {
    assertPostgresJs(sql);
    assertIdentifier("table", table);
    assertIdentifier("channel", channel);
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) {
      throw new RangeError(`[acp] [${PACKAGE}] ttlMs must be a positive number of milliseconds (got ${ttlMs})`);
    }
    // setInterval turns longer delays into 1 ms, which would sweep without pause.
    if (!(Number.isFinite(sweepIntervalMs) && sweepIntervalMs >= 0 && sweepIntervalMs <= MAX_TIMER_MS)) {
      throw new RangeError(
        `[acp] [${PACKAGE}] sweepIntervalMs must be 0 or a number of milliseconds up to ${MAX_TIMER_MS} (got ${sweepIntervalMs})`,
      );
    }
    this.#sql = sql;
    this.#tables = tablesOf(sql, table);
    this.#ttlMs = ttlMs;
    this.#sweepIntervalMs = sweepIntervalMs;
    this.#onSweepError = onSweepError;
    this.#onNotifyError = onNotifyError;
    this.#notifier = new RunNotifier(sql, channel);
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
      const migration = this.#attempt("migrate", () => migrateSchema(this.#sql, this.#tables), false);
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

  async createRun(record: StoredRun, events: Event[]): Promise<boolean> {
    const runId = record.run.run_id;
    const { records, events: eventTable } = this.#tables;
    const ttl = interval(this.#ttlMs);
    const value = recordJson(record);
    const ended = isTerminal(record.run.status);
    const eventList = eventsJson(events);
    return this.#attempt("createRun", async () => {
      // No notification: nobody can be subscribed to a run id that did not exist.
      const [inserted] = await this.#sql<{ created: number }[]>`
        WITH created AS (
          INSERT INTO ${records} (kind, id, value, version, ended, last_seq, expires_at)
          VALUES ('run', ${runId}, ${value}::text::jsonb, 1, ${ended}, ${events.length}, now() + ${ttl}::interval)
          ON CONFLICT (kind, id) DO NOTHING
          RETURNING id
        ), appended AS (
          INSERT INTO ${eventTable} (run_id, seq, event)
          SELECT created.id, x.ord, x.event
          FROM created, jsonb_array_elements(${eventList}::text::jsonb) WITH ORDINALITY AS x(event, ord)
        )
        SELECT count(*)::int AS created FROM created`;
      if (inserted?.created === 1) return true;
      // The id is taken: by a live run (the usual case), or by an expired one not swept yet.
      const takenOver = await this.#sql.begin(async function takeOverExpiredRun(tx): Promise<boolean> {
        // Inserts too, in case the sweep deleted that row in the meantime.
        const rows = await tx`
          INSERT INTO ${records} AS r (kind, id, value, version, ended, last_seq, expires_at)
          VALUES ('run', ${runId}, ${value}::text::jsonb, 1, ${ended}, ${events.length}, now() + ${ttl}::interval)
          ON CONFLICT (kind, id) DO UPDATE SET
            value = excluded.value, version = 1, ended = excluded.ended,
            last_seq = excluded.last_seq, expires_at = excluded.expires_at
          WHERE r.expires_at <= now()
          RETURNING id`;
        if (rows.length === 0) return false;
        await tx`DELETE FROM ${eventTable} WHERE run_id = ${runId}`;
        await tx`
          INSERT INTO ${eventTable} (run_id, seq, event)
          SELECT ${runId}, x.ord, x.event
          FROM jsonb_array_elements(${eventList}::text::jsonb) WITH ORDINALITY AS x(event, ord)`;
        return true;
      });
      // Readers of the expired run, if any, learn that it was replaced.
      if (takenOver) this.#notify(notification("record", runId, 1));
      return takenOver;
    });
  }

  async getRun(runId: string): Promise<StoredRun | undefined> {
    return this.#attempt("getRun", () => this.#readRun(runId));
  }

  async updateRun(runId: string, expectedVersion: number, next: StoredRun, events: Event[], { history, unobserved = false }: UpdateOptions = {}): Promise<UpdateResult> {
    const { records, events: eventTable } = this.#tables;
    const value = recordJson(next);
    return this.#attempt("updateRun", async () => {
      // One statement: the row lock taken by UPDATE orders concurrent writers of the run, and
      // the events take the seqs after the row's last_seq. History items join it (only when the
      // update applies) as appendHistory writes them.
      const [updated] = await this.#sql<{ version: number; last: number; session: number }[]>`
        WITH updated AS (
          UPDATE ${records} SET
            value = ${value}::text::jsonb, version = version + 1,
            ended = ${isTerminal(next.run.status)}, last_seq = last_seq + ${events.length},
            expires_at = now() + ${interval(this.#ttlMs)}::interval
          WHERE kind = 'run' AND id = ${runId} AND version = ${expectedVersion} AND expires_at > now()
          RETURNING version, last_seq
        ), appended AS (
          INSERT INTO ${eventTable} (run_id, seq, event)
          SELECT ${runId}, updated.last_seq - ${events.length} + x.ord, x.event
          FROM updated, jsonb_array_elements(${eventsJson(events)}::text::jsonb) WITH ORDINALITY AS x(event, ord)
        )${history ? this.#sql`, ${this.#appendToSession(history, this.#sql`FROM updated`)}` : this.#sql``}
        SELECT version, last_seq AS last, ${history ? this.#sql`(SELECT count(*)::int FROM session)` : this.#sql`1`} AS session FROM updated`;
      // An expired session that the sweep has not deleted yet takes no items: it starts over.
      if (updated && history && updated.session === 0) await this.#restartExpiredSession(history.sessionId, history.items);
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

  async appendEvents(runId: string, events: Event[]): Promise<number | null> {
    const { records, events: eventTable } = this.#tables;
    return this.#attempt("appendEvents", async () => {
      const [appended] = await this.#sql<{ last: number }[]>`
        WITH updated AS (
          UPDATE ${records} SET last_seq = last_seq + ${events.length}, expires_at = now() + ${interval(this.#ttlMs)}::interval
          WHERE kind = 'run' AND id = ${runId} AND NOT ended AND expires_at > now()
          RETURNING last_seq
        ), appended AS (
          INSERT INTO ${eventTable} (run_id, seq, event)
          SELECT ${runId}, updated.last_seq - ${events.length} + x.ord, x.event
          FROM updated, jsonb_array_elements(${eventsJson(events)}::text::jsonb) WITH ORDINALITY AS x(event, ord)
        )
        SELECT last_seq AS last FROM updated`;
      if (!appended) return null;
      this.#notify(notification("events", runId));
      return appended.last;
    });
  }

  async readEvents(runId: string, afterSeq: number, limit?: number): Promise<StoredEvent[]> {
    const { records, events } = this.#tables;
    return this.#attempt("readEvents", async () => {
      const rows = await this.#sql<StoredEvent[]>`
        SELECT e.seq, e.event
        FROM ${events} e
        WHERE e.run_id = ${runId} AND e.seq > ${afterSeq}
          AND EXISTS (
            SELECT 1 FROM ${records} r WHERE r.kind = 'run' AND r.id = ${runId} AND r.expires_at > now()
          )
        ORDER BY e.seq
        LIMIT ${limit ?? null}`;
      return rows.map(({ seq, event }) => ({ seq, event }));
    });
  }

  async subscribe(runId: string, listener: ChangeListener): Promise<Unsubscribe> {
    return this.#attempt("subscribe", () => this.#notifier.subscribe(runId, listener), false);
  }

  async appendHistory(sessionId: string, items: HistoryItem[]): Promise<void> {
    await this.#attempt("appendHistory", async () => {
      const [session] = await this.#sql<{ found: number }[]>`
        WITH ${this.#appendToSession({ sessionId, items }, this.#sql``)}
        SELECT count(*)::int AS found FROM session`;
      if (session?.found !== 1) await this.#restartExpiredSession(sessionId, items);
    });
  }

  /**
   * The CTEs `session` and `session_items` of a statement that appends `items` to a session,
   * once per row of `from` (empty: once). The upsert locks the session row until commit, so
   * concurrent appends take turns and each gets a contiguous range of positions after the row's
   * last_seq. An expired session yields no `session` row, and takes no items. No notification:
   * nobody subscribes to sessions.
   */
  #appendToSession({ sessionId, items }: HistoryAppend, from: PendingQuery<Row[]>): PendingQuery<Row[]> {
    const { records, history } = this.#tables;
    // `WHERE true`: without it, PostgreSQL could read the ON of ON CONFLICT as a join's.
    return this.#sql`session AS (
          INSERT INTO ${records} AS r (kind, id, last_seq, expires_at)
          SELECT 'session', ${sessionId}, ${items.length}, now() + ${interval(this.#ttlMs)}::interval ${from} WHERE true
          ON CONFLICT (kind, id) DO UPDATE SET
            last_seq = r.last_seq + excluded.last_seq, expires_at = excluded.expires_at
          WHERE r.expires_at > now()
          RETURNING last_seq
        ), session_items AS (
          INSERT INTO ${history} (session_id, position, item_id, message)
          SELECT ${sessionId}, session.last_seq - ${items.length} + x.ord, x.item->>'id', x.item->'message'
          FROM session, jsonb_array_elements(${itemsJson(items)}::text::jsonb) WITH ORDINALITY AS x(item, ord)
        )`;
  }

  /** Appends to a session that expired but is not swept yet: it starts over, without its old items. */
  async #restartExpiredSession(sessionId: string, items: HistoryItem[]): Promise<void> {
    const { records, history } = this.#tables;
    await this.#sql.begin(async (tx) => {
      await tx`
        WITH gone AS (
          DELETE FROM ${records} WHERE kind = 'session' AND id = ${sessionId} AND expires_at <= now()
          RETURNING id
        )
        DELETE FROM ${history} WHERE session_id IN (SELECT id FROM gone)`;
      await tx`WITH ${this.#appendToSession({ sessionId, items }, tx``)} SELECT 1`;
    });
  }

  async getHistory(sessionId: string): Promise<HistoryItem[] | undefined> {
    const { records, history } = this.#tables;
    return this.#attempt("getHistory", async () => {
      // One row with nulls for a session without items; no row for an unknown session.
      const rows = await this.#sql<HistoryRow[]>`
        SELECT h.item_id AS item, h.message
        FROM ${records} s LEFT JOIN ${history} h ON h.session_id = s.id
        WHERE s.kind = 'session' AND s.id = ${sessionId} AND s.expires_at > now()
        ORDER BY h.position`;
      if (rows.length === 0) return undefined;
      return rows.flatMap(({ item, message }) => (item === null || message === null ? [] : [{ id: item, message }]));
    });
  }

  async getHistoryItem(itemId: string): Promise<HistoryItem | undefined> {
    const { records, history } = this.#tables;
    return this.#attempt("getHistoryItem", async () => {
      const [row] = await this.#sql<HistoryRow[]>`
        SELECT h.item_id AS item, h.message
        FROM ${history} h JOIN ${records} s ON s.kind = 'session' AND s.id = h.session_id
        WHERE h.item_id = ${itemId} AND s.expires_at > now()
        LIMIT 1`;
      return row?.item != null && row.message != null ? { id: row.item, message: row.message } : undefined;
    });
  }

  async heartbeat(instanceId: string, leaseMs: number): Promise<void> {
    const { records } = this.#tables;
    await this.#attempt("heartbeat", () => this.#sql`
      INSERT INTO ${records} (kind, id, expires_at) VALUES ('instance', ${instanceId}, now() + ${interval(leaseMs)}::interval)
      ON CONFLICT (kind, id) DO UPDATE SET expires_at = excluded.expires_at`);
  }

  async isAlive(instanceId: string): Promise<boolean> {
    const { records } = this.#tables;
    return this.#attempt("isAlive", async () => {
      const rows = await this.#sql`
        SELECT 1 AS alive FROM ${records}
        WHERE kind = 'instance' AND id = ${instanceId} AND expires_at > now()`;
      return rows.length > 0;
    });
  }

  async listActiveRuns(): Promise<string[]> {
    const { records } = this.#tables;
    return this.#attempt("listActiveRuns", async () => {
      const rows = await this.#sql<{ id: string }[]>`
        SELECT id FROM ${records} WHERE kind = 'run' AND NOT ended AND expires_at > now()`;
      return rows.map((row) => row.id);
    });
  }

  async ping(): Promise<void> {
    await this.#attempt("ping", () => this.#sql`SELECT 1 AS ok`, false);
  }

  /**
   * Deletes expired runs with their events, expired sessions with their history, and expired
   * heartbeats. Runs on a timer (see `sweepIntervalMs`); when another instance is sweeping the
   * same tables this call does nothing, so instances never wait on each other's sweep.
   * @returns how many runs, sessions and heartbeats it deleted
   */
  async sweep(): Promise<number> {
    const { name, records, events, history } = this.#tables;
    return this.#attempt("sweep", () =>
      this.#sql.begin(async function sweepInTransaction(tx): Promise<number> {
        const [lock] = await tx<{ locked: boolean }[]>`
          SELECT pg_try_advisory_xact_lock(hashtext(${LOCK_NAMESPACE.sweep}), hashtext(${name})) AS locked`;
        if (!lock?.locked) return 0;
        const [deleted] = await tx<{ count: number }[]>`
          WITH gone AS (
            DELETE FROM ${records} WHERE expires_at <= now() RETURNING kind, id
          ), gone_events AS (
            DELETE FROM ${events} WHERE run_id IN (SELECT id FROM gone WHERE kind = 'run')
          ), gone_history AS (
            DELETE FROM ${history} WHERE session_id IN (SELECT id FROM gone WHERE kind = 'session')
          )
          SELECT count(*)::int AS count FROM gone`;
        return deleted?.count ?? 0;
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
    await this.#attempt("close", () => this.#notifier.close(), false);
  }

  /**
   * Sends a change notification after a committed write, without holding the write up: the
   * writer's caller does not need it, and waiting for it would add a round trip to every write.
   */
  #notify(payload: string): void {
    this.#notifications.send(payload).catch((error: unknown) => {
      const reason = error instanceof Error ? error.message : String(error);
      this.#onNotifyError(new StoreError(PACKAGE, `notification failed: ${reason}`, { cause: error }));
    });
  }

  async #readRun(runId: string): Promise<StoredRun | undefined> {
    const [row] = await this.#sql<RunRow[]>`
      SELECT value, version FROM ${this.#tables.records}
      WHERE kind = 'run' AND id = ${runId} AND expires_at > now()`;
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
   * Runs `operation` after the schema is in place (unless `needsSchema` is false) and rethrows
   * its failure as a {@link StoreError} that keeps the cause.
   */
  async #attempt<T>(what: string, operation: () => Promise<T>, needsSchema = true): Promise<T> {
    // Once the schema is in place, operations skip the wait for it.
    if (needsSchema && !this.#migrated) await this.migrate();
    try {
      return await operation();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new StoreError(PACKAGE, `${what} failed: ${reason}`, { cause: error });
    }
  }
}

/**
 * A duration as interval text, added to `now()` in SQL: expiry follows the database clock, so
 * instances whose clocks disagree still agree on what has expired.
 */
function interval(ms: number): string {
  return `${Math.max(0, ms)} milliseconds`;
}

/**
 * JSON goes to PostgreSQL as text and is cast there (`::text::jsonb`): a parameter typed jsonb
 * would make postgres.js encode the string once more.
 */
function recordJson({ run, owner, resume }: StoredRun): string {
  // The version lives in its own column. Named fields rather than `...rest`: copying an object
  // of varying shape by rest is slow in V8, and this runs on every write.
  return JSON.stringify({ run, owner, resume });
}
// Fails to compile when StoredRun gains a field that recordJson() would leave out.
const RECORD_FIELDS: Record<keyof StoredRun, true> = { run: true, version: true, owner: true, resume: true };
void RECORD_FIELDS;

/**
 * Events as one JSON array, unpacked by `jsonb_array_elements`: cheaper than a text[]
 * parameter, whose every element postgres.js would escape.
 */
function eventsJson(events: Event[]): string {
  return JSON.stringify(events);
}

/** History items as one JSON array of `{ id, message }`, like {@link eventsJson}. */
function itemsJson(items: HistoryItem[]): string {
  return JSON.stringify(items.map(({ id, message }) => ({ id, message })));
}

function toStoredRun(row: RunRow): StoredRun {
  return { ...row.value, version: row.version };
}

function assertPostgresJs(sql: unknown): asserts sql is Sql<any> {
  const candidate = sql as Partial<Sql<any>> | undefined;
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

function reportSweepError(error: StoreError): void {
  console.error(error);
}

function reportNotifyError(error: StoreError): void {
  console.error(error);
}

/**
 * The SQL of `PostgreSQLStore`: one method per statement over the tables of one store,
 * each returning the (lazy) query for the store to run on its connection or in a transaction.
 *
 * Expiry follows the database clock (`now()`), so instances whose clocks disagree still agree
 * on what has expired. JSON goes to PostgreSQL as text and is cast there (`::text::jsonb`): a
 * parameter typed jsonb would make postgres.js encode the string once more.
 */
import type {
  Event,
  HistoryAppend,
  HistoryItem,
  historyItemBytes,
  StepRecord,
  StoredEvent,
  StoredRun,
} from "@acp/core";
import type { PendingQuery, Row } from "postgres";
import type { Connection } from "./client.ts";
import { LOCK_NAMESPACE, type Tables } from "./schema.ts";

/** A run to insert, encoded before the store's first round trip. */
export interface NewRun {
  runId: string;
  /** The instance that runs it, also kept in the `owner` column. */
  owner: string;
  /** Its ownership epoch (1 when the record has none), also kept in the `epoch` column. */
  epoch: number;
  /** The record without its version, as JSON ({@link recordJson}). */
  value: string;
  ended: boolean;
  /** Its first events, as one JSON array ({@link eventsJson}). */
  events: string;
  eventCount: number;
}

/** A compare-and-set of a run record, with what it appends. */
export interface RunUpdate {
  expectedVersion: number;
  owner: string;
  epoch: number;
  /** The new record without its version, as JSON ({@link recordJson}). */
  value: string;
  ended: boolean;
  events: Event[];
  history: HistoryAppend | undefined;
}

export interface RunRow {
  value: Omit<StoredRun, "version">;
  version: number;
}

export interface StepRow {
  idx: number;
  name: string;
  result: string | null;
  error: string | null;
}

export interface SessionRow {
  item: string | null;
  bytes: number | null;
}

export interface HistoryRow {
  item: string | null;
  message: HistoryItem["message"] | null;
}

export class Queries {
  readonly #tables: Tables;
  readonly #ttl: string;
  /** A heartbeat rewrites a run whose time left is below this: three quarters of the TTL. */
  readonly #refreshBelow: string;

  constructor(tables: Tables, ttlMs: number) {
    this.#tables = tables;
    this.#ttl = interval(ttlMs);
    this.#refreshBelow = interval(Math.floor((ttlMs * 3) / 4));
  }

  /**
   * Inserts a run and its events unless the id is taken; `created` is 1 when it was inserted.
   * With `history`, its items join the session in the same statement (only when the run was
   * inserted); `session` is 0 when the session expired and took no items.
   */
  insertRun(
    sql: Connection,
    run: NewRun,
    history?: HistoryAppend,
  ): PendingQuery<{ created: number; session: number }[]> {
    const { records, events } = this.#tables;
    return sql`
      WITH created AS (
        INSERT INTO ${records} (kind, id, value, owner, epoch, version, ended, last_seq, expires_at)
        VALUES ('run', ${run.runId}, ${run.value}::text::jsonb, ${run.owner}, ${run.epoch}, 1, ${run.ended}, ${run.eventCount}, now() + ${this.#ttl}::interval)
        ON CONFLICT (kind, id) DO NOTHING
        RETURNING id
      ), appended AS (
        INSERT INTO ${events} (run_id, seq, event)
        SELECT created.id, x.ord, x.event
        FROM created, json_array_elements(${run.events}::text::json) WITH ORDINALITY AS x(event, ord)
      )${history ? sql`, ${this.#appendToSession(sql, history, sql`FROM created`)}` : sql``}
      SELECT count(*)::int AS created, ${history ? sql`(SELECT count(*)::int FROM session)` : sql`1`} AS session
      FROM created`;
  }

  /** Appends items to a session (a run taken over, in its transaction); `session` is 0 when the session expired. */
  appendHistory(tx: Connection, history: HistoryAppend): PendingQuery<{ session: number }[]> {
    return tx`WITH ${this.#appendToSession(tx, history, tx``)} SELECT count(*)::int AS session FROM session`;
  }

  /**
   * Writes the run over an expired row of the same id (or inserts it, in case the sweep deleted
   * that row meanwhile); no row when a live run holds the id. Its events follow with
   * {@link Queries.replaceEvents} in the same transaction.
   */
  takeOverExpiredRun(tx: Connection, run: NewRun): PendingQuery<Row[]> {
    const { records } = this.#tables;
    return tx`
      INSERT INTO ${records} AS r (kind, id, value, owner, epoch, version, ended, last_seq, expires_at)
      VALUES ('run', ${run.runId}, ${run.value}::text::jsonb, ${run.owner}, ${run.epoch}, 1, ${run.ended}, ${run.eventCount}, now() + ${this.#ttl}::interval)
      ON CONFLICT (kind, id) DO UPDATE SET
        value = excluded.value, owner = excluded.owner, epoch = excluded.epoch, version = 1, ended = excluded.ended,
        last_seq = excluded.last_seq, expires_at = excluded.expires_at
      WHERE r.expires_at <= now()
      RETURNING id`;
  }

  /** Drops the log and steps of a run taken over and writes its first events, in a transaction. */
  async replaceEvents(tx: Connection, run: NewRun): Promise<void> {
    const { events, steps } = this.#tables;
    await tx`DELETE FROM ${events} WHERE run_id = ${run.runId}`;
    await tx`DELETE FROM ${steps} WHERE run_id = ${run.runId}`;
    await tx`
      INSERT INTO ${events} (run_id, seq, event)
      SELECT ${run.runId}, x.ord, x.event
      FROM json_array_elements(${run.events}::text::json) WITH ORDINALITY AS x(event, ord)`;
  }

  /**
   * The compare-and-set, in one statement: the row lock taken by UPDATE orders concurrent
   * writers of the run, and the events take the seqs after the row's last_seq. History items
   * join it (only when the update applies). No row when the version differs or the run is
   * unknown or expired; `session` is 0 when the session expired and took no items.
   */
  updateRun(
    sql: Connection,
    runId: string,
    update: RunUpdate,
  ): PendingQuery<{ version: number; last: number; session: number }[]> {
    const { records, events } = this.#tables;
    const { history } = update;
    const count = update.events.length;
    return sql`
      WITH updated AS (
        UPDATE ${records} SET
          value = ${update.value}::text::jsonb, owner = ${update.owner}, epoch = ${update.epoch}, version = version + 1,
          ended = ${update.ended}, last_seq = last_seq + ${count},
          expires_at = now() + ${this.#ttl}::interval
        WHERE kind = 'run' AND id = ${runId} AND version = ${update.expectedVersion} AND expires_at > now()
        RETURNING version, last_seq
      ), appended AS (
        INSERT INTO ${events} (run_id, seq, event)
        SELECT ${runId}, updated.last_seq - ${count} + x.ord, x.event
        FROM updated, json_array_elements(${eventsJson(update.events)}::text::json) WITH ORDINALITY AS x(event, ord)
      )${history ? sql`, ${this.#appendToSession(sql, history, sql`FROM updated`)}` : sql``}
      SELECT version, last_seq AS last, ${history ? sql`(SELECT count(*)::int FROM session)` : sql`1`} AS session FROM updated`;
  }

  /**
   * Appends events to a run that has not ended; no row when it is unknown, expired or ended, or
   * when `epoch` is given and the run's differs. The epoch is checked by the UPDATE that locks
   * the run's row, so no takeover lands between the check and the append.
   */
  appendEvents(
    sql: Connection,
    runId: string,
    events: Event[],
    epoch: number | undefined,
  ): PendingQuery<{ last: number }[]> {
    const { records, events: eventTable } = this.#tables;
    const fence = epoch === undefined ? sql`` : sql`AND epoch = ${epoch}`;
    return sql`
      WITH updated AS (
        UPDATE ${records} SET last_seq = last_seq + ${events.length}, expires_at = now() + ${this.#ttl}::interval
        WHERE kind = 'run' AND id = ${runId} AND NOT ended AND expires_at > now() ${fence}
        RETURNING last_seq
      ), appended AS (
        INSERT INTO ${eventTable} (run_id, seq, event)
        SELECT ${runId}, updated.last_seq - ${events.length} + x.ord, x.event
        FROM updated, json_array_elements(${eventsJson(events)}::text::json) WITH ORDINALITY AS x(event, ord)
      )
      SELECT last_seq AS last FROM updated`;
  }

  /**
   * Stores a step of a run that has not ended, at the given epoch, in one statement: the UPDATE
   * checks the run and locks its row (and restarts its TTL), the INSERT skips a taken index.
   * `stored` is 1 when the step was stored.
   */
  recordStep(sql: Connection, runId: string, epoch: number, step: StepRecord): PendingQuery<{ stored: number }[]> {
    const { records, steps } = this.#tables;
    return sql`
      WITH updated AS (
        UPDATE ${records} SET expires_at = now() + ${this.#ttl}::interval
        WHERE kind = 'run' AND id = ${runId} AND NOT ended AND expires_at > now() AND epoch = ${epoch}
        RETURNING id
      ), stored AS (
        INSERT INTO ${steps} (run_id, idx, name, result, error)
        SELECT id, ${step.index}, ${step.name}, ${step.result ?? null}, ${step.error ?? null} FROM updated
        ON CONFLICT (run_id, idx) DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS stored FROM stored`;
  }

  /** The steps of a live run by index, in one query. */
  readSteps(sql: Connection, runId: string): PendingQuery<StepRow[]> {
    const { records, steps } = this.#tables;
    return sql`
      SELECT s.idx, s.name, s.result, s.error
      FROM ${steps} s
      WHERE s.run_id = ${runId}
        AND EXISTS (
          SELECT 1 FROM ${records} r WHERE r.kind = 'run' AND r.id = ${runId} AND r.expires_at > now()
        )
      ORDER BY s.idx`;
  }

  readEvents(sql: Connection, runId: string, afterSeq: number, limit: number | undefined): PendingQuery<StoredEvent[]> {
    const { records, events } = this.#tables;
    return sql`
      SELECT e.seq, e.event
      FROM ${events} e
      WHERE e.run_id = ${runId} AND e.seq > ${afterSeq}
        AND EXISTS (
          SELECT 1 FROM ${records} r WHERE r.kind = 'run' AND r.id = ${runId} AND r.expires_at > now()
        )
      ORDER BY e.seq
      LIMIT ${limit ?? null}`;
  }

  /** The version, end and last seq of each live run among `runIds`, in one query over the primary key. */
  readRunHeads(
    sql: Connection,
    runIds: string[],
  ): PendingQuery<{ id: string; version: number; ended: boolean; last: number }[]> {
    return sql`
      SELECT id, version, ended, last_seq AS last FROM ${this.#tables.records}
      WHERE kind = 'run' AND id = ANY(${runIds}::text[]) AND expires_at > now()`;
  }

  readRun(sql: Connection, runId: string): PendingQuery<RunRow[]> {
    return sql`
      SELECT value, version FROM ${this.#tables.records}
      WHERE kind = 'run' AND id = ${runId} AND expires_at > now()`;
  }

  /**
   * Appends to a session that expired but is not swept yet, in a transaction: it starts over,
   * without its old items.
   */
  async restartExpiredSession(tx: Connection, history: HistoryAppend): Promise<void> {
    const { records, history: historyTable } = this.#tables;
    await tx`
      WITH gone AS (
        DELETE FROM ${records} WHERE kind = 'session' AND id = ${history.sessionId} AND expires_at <= now()
        RETURNING id
      )
      DELETE FROM ${historyTable} WHERE session_id IN (SELECT id FROM gone)`;
    await tx`WITH ${this.#appendToSession(tx, history, tx``)} SELECT 1`;
  }

  /** One row with nulls for a session without items; no row for an unknown session. */
  readHistory(sql: Connection, sessionId: string): PendingQuery<HistoryRow[]> {
    const { records, history } = this.#tables;
    return sql`
      SELECT h.item_id AS item, h.message
      FROM ${records} s LEFT JOIN ${history} h ON h.session_id = s.id
      WHERE s.kind = 'session' AND s.id = ${sessionId} AND s.expires_at > now()
      ORDER BY h.position`;
  }

  /** Like {@link readHistory}, with each item's size instead of its message. */
  readSession(sql: Connection, sessionId: string): PendingQuery<SessionRow[]> {
    const { records, history } = this.#tables;
    return sql`
      SELECT h.item_id AS item, h.bytes
      FROM ${records} s LEFT JOIN ${history} h ON h.session_id = s.id
      WHERE s.kind = 'session' AND s.id = ${sessionId} AND s.expires_at > now()
      ORDER BY h.position`;
  }

  readHistoryItem(sql: Connection, itemId: string): PendingQuery<HistoryRow[]> {
    const { records, history } = this.#tables;
    return sql`
      SELECT h.item_id AS item, h.message
      FROM ${history} h JOIN ${records} s ON s.kind = 'session' AND s.id = h.session_id
      WHERE h.item_id = ${itemId} AND s.expires_at > now()
      LIMIT 1`;
  }

  /**
   * Extends the instance's lease and, in the same statement, restarts the TTL of the runs it owns
   * that have not ended. A run is rewritten only once a quarter of its TTL has passed, so that a
   * heartbeat every few seconds does not rewrite every run each time (and bloat the table).
   */
  heartbeat(sql: Connection, instanceId: string, leaseMs: number): PendingQuery<Row[]> {
    const records = this.#tables.records;
    return sql`
      WITH lease AS (
        INSERT INTO ${records} (kind, id, expires_at) VALUES ('instance', ${instanceId}, now() + ${interval(leaseMs)}::interval)
        ON CONFLICT (kind, id) DO UPDATE SET expires_at = excluded.expires_at
      )
      UPDATE ${records} SET expires_at = now() + ${this.#ttl}::interval
      WHERE kind = 'run' AND owner = ${instanceId} AND NOT ended
        AND expires_at > now() AND expires_at < now() + ${this.#refreshBelow}::interval`;
  }

  /** One row when the instance's heartbeat has not run out. */
  isAlive(sql: Connection, instanceId: string): PendingQuery<Row[]> {
    return sql`
      SELECT 1 AS alive FROM ${this.#tables.records}
      WHERE kind = 'instance' AND id = ${instanceId} AND expires_at > now()`;
  }

  /**
   * Runs not ended whose owner holds no lease that is still running (an anti-join on the
   * instances' rows), or that have no owner (`""`: released by a draining instance).
   */
  listOrphanedRuns(sql: Connection, limit: number | undefined): PendingQuery<{ id: string }[]> {
    const records = this.#tables.records;
    return sql`
      SELECT r.id FROM ${records} r
      WHERE r.kind = 'run' AND NOT r.ended AND r.expires_at > now()
        AND (r.owner = '' OR NOT EXISTS (
          SELECT 1 FROM ${records} i WHERE i.kind = 'instance' AND i.id = r.owner AND i.expires_at > now()
        ))
      LIMIT ${limit ?? null}`;
  }

  ping(sql: Connection): PendingQuery<Row[]> {
    return sql`SELECT 1 AS ok`;
  }

  /**
   * In a transaction: deletes expired runs with their events, expired sessions with their
   * history, and expired heartbeats, unless another instance is sweeping the same tables.
   * @returns how many rows of runs, sessions and heartbeats it deleted (0 when it did not sweep)
   */
  async sweep(tx: Connection): Promise<number> {
    const { name, records, events, history, steps } = this.#tables;
    const [lock] = await tx<{ locked: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(hashtext(${LOCK_NAMESPACE.sweep}), hashtext(${name})) AS locked`;
    if (!lock?.locked) return 0;
    const [deleted] = await tx<{ count: number }[]>`
      WITH gone AS (
        DELETE FROM ${records} WHERE expires_at <= now() RETURNING kind, id
      ), gone_events AS (
        DELETE FROM ${events} WHERE run_id IN (SELECT id FROM gone WHERE kind = 'run')
      ), gone_steps AS (
        DELETE FROM ${steps} WHERE run_id IN (SELECT id FROM gone WHERE kind = 'run')
      ), gone_history AS (
        DELETE FROM ${history} WHERE session_id IN (SELECT id FROM gone WHERE kind = 'session')
      )
      SELECT count(*)::int AS count FROM gone`;
    return deleted?.count ?? 0;
  }

  /**
   * The CTEs `session` and `session_items` of a statement that appends `items` to a session,
   * once per row of `from` (empty: once). The upsert locks the session row until commit, so
   * concurrent appends take turns and each gets a contiguous range of positions after the row's
   * last_seq. An expired session yields no `session` row, and takes no items. No notification:
   * nobody subscribes to sessions.
   */
  #appendToSession(
    sql: Connection,
    { sessionId, items }: HistoryAppend,
    from: PendingQuery<Row[]>,
  ): PendingQuery<Row[]> {
    const { records, history } = this.#tables;
    // `WHERE true`: without it, PostgreSQL could read the ON of ON CONFLICT as a join's.
    return sql`session AS (
        INSERT INTO ${records} AS r (kind, id, last_seq, expires_at)
        SELECT 'session', ${sessionId}, ${items.length}, now() + ${this.#ttl}::interval ${from} WHERE true
        ON CONFLICT (kind, id) DO UPDATE SET
          last_seq = r.last_seq + excluded.last_seq, expires_at = excluded.expires_at
        WHERE r.expires_at > now()
        RETURNING last_seq
      ), session_items AS (
        INSERT INTO ${history} (session_id, position, item_id, message, bytes)
        SELECT ${sessionId}, session.last_seq - ${items.length} + x.ord, x.item->>'id', x.item->'message', (x.item->>'bytes')::int
        FROM session, jsonb_array_elements(${itemsJson(items)}::text::jsonb) WITH ORDINALITY AS x(item, ord)
      )`;
  }
}

/** A duration as interval text, added to `now()` in SQL. */
function interval(ms: number): string {
  return `${Math.max(0, ms)} milliseconds`;
}

/** The record without its version, which lives in its own column. */
export function recordJson({ run, owner, resume, tenant, epoch, durable, trace }: StoredRun): string {
  // Named fields rather than `...rest`: copying an object of varying shape by rest is slow in
  // V8, and this runs on every write.
  return JSON.stringify({ run, owner, resume, tenant, epoch, durable, trace });
}
// Fails to compile when StoredRun gains a field that recordJson() would leave out.
const RECORD_FIELDS: Record<keyof StoredRun, true> = {
  run: true,
  version: true,
  owner: true,
  resume: true,
  tenant: true,
  epoch: true,
  durable: true,
  trace: true,
};
void RECORD_FIELDS;

/**
 * Events as one JSON array, unpacked by `json_array_elements`: cheaper than a text[]
 * parameter, whose every element postgres.js would escape.
 */
export function eventsJson(events: Event[]): string {
  return JSON.stringify(events);
}

/**
 * History items as one JSON array of `{ id, message, bytes }`, like {@link eventsJson}. Each
 * message is serialised once, for the array and for its size ({@link historyItemBytes}: the
 * UTF-8 length of that same text).
 */
function itemsJson(items: HistoryItem[]): string {
  let json = "[";
  for (let index = 0; index < items.length; index++) {
    const { id, message } = items[index]!;
    const text = JSON.stringify(message);
    json += `${index === 0 ? "" : ","}{"id":${JSON.stringify(id)},"message":${text},"bytes":${Buffer.byteLength(text, "utf8")}}`;
  }
  return `${json}]`;
}

/** A step as the store hands it out: `result` or `error`, whichever was recorded. */
export function toStepRecord({ idx, name, result, error }: StepRow): StepRecord {
  const step: StepRecord = { index: idx, name };
  if (result !== null) step.result = result;
  if (error !== null) step.error = error;
  return step;
}

export function toStoredRun(row: RunRow): StoredRun {
  return { ...row.value, version: row.version };
}

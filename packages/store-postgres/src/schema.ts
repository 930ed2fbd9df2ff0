/**
 * The store's schema and its versioned migrations. `migrate` runs under a transaction-scoped
 * advisory lock, so several instances starting at once apply each step exactly once.
 */
import type { Helper } from "postgres";
import type { Client, Transaction } from "./client.ts";

/** The tables of one store, as postgres.js identifiers. */
export interface Tables {
  /** The name the user configured, e.g. `acp_store`; part of the advisory lock keys. */
  name: string;
  /** Runs, sessions and heartbeats: one row per (kind, id), each with its own `expires_at`. */
  records: Helper<string>;
  /** Events of runs: (run_id, seq) → event. */
  events: Helper<string>;
  /** Session histories: (session_id, position) → item. */
  history: Helper<string>;
  /** Recorded steps of durable runs: (run_id, idx) → step. */
  steps: Helper<string>;
  /** One row holding the schema version. */
  schema: Helper<string>;
}

/** Builds the identifiers of a store's tables from its validated table name. */
export function tablesOf(sql: Client, name: string): Tables {
  return {
    name,
    records: sql(name),
    events: sql(`${name}_events`),
    history: sql(`${name}_history`),
    steps: sql(`${name}_steps`),
    schema: sql(`${name}_schema`),
  };
}

type Migration = (tx: Transaction, tables: Tables) => Promise<unknown>;

/**
 * Schema steps in order; step `i` brings the schema to version `i + 1`. Never edit a released
 * step: append a new one.
 *
 * Events and history items have no `expires_at` of their own: they live as long as their run or
 * session row, and are deleted together with it, so a write costs one row however long the log.
 */
const MIGRATIONS: Migration[] = [
  async function createTables(tx, { records, events, history }) {
    await tx`
      CREATE TABLE ${records} (
        kind text NOT NULL,
        id text NOT NULL,
        value jsonb,
        version integer NOT NULL DEFAULT 0,
        ended boolean NOT NULL DEFAULT false,
        last_seq integer NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (kind, id)
      )`;
    await tx`CREATE INDEX ON ${records} (expires_at)`;
    await tx`CREATE INDEX ON ${records} (id) WHERE kind = 'run' AND NOT ended`;
    await tx`
      CREATE TABLE ${events} (
        run_id text NOT NULL,
        seq integer NOT NULL,
        event jsonb NOT NULL,
        PRIMARY KEY (run_id, seq)
      )`;
    await tx`
      CREATE TABLE ${history} (
        session_id text NOT NULL,
        position integer NOT NULL,
        item_id text NOT NULL,
        message jsonb NOT NULL,
        PRIMARY KEY (session_id, position)
      )`;
    await tx`CREATE INDEX ON ${history} (item_id)`;
  },
  async function indexOwnersAndItemSizes(tx, { records, history }) {
    // The owner of a run as a column, so that heartbeats and the orphan search find an instance's
    // runs through an index instead of reading every record.
    await tx`ALTER TABLE ${records} ADD COLUMN owner text`;
    await tx`UPDATE ${records} SET owner = value->>'owner' WHERE kind = 'run'`;
    await tx`CREATE INDEX ON ${records} (owner) WHERE kind = 'run' AND NOT ended`;
    // The size of each item's message, so that a session's size is read without its messages.
    // Items written before have the size of PostgreSQL's own text of the JSON, close enough.
    await tx`ALTER TABLE ${history} ADD COLUMN bytes integer NOT NULL DEFAULT 0`;
    await tx`UPDATE ${history} SET bytes = octet_length(message::text)`;
  },
  async function addEpochsAndSteps(tx, { records, steps }) {
    // The ownership epoch as a column (it is in the record's JSON too), so that a fenced write
    // checks it in the WHERE of the UPDATE that locks the run's row: atomic and O(1). Runs
    // written before are at epoch 1.
    await tx`ALTER TABLE ${records} ADD COLUMN epoch integer NOT NULL DEFAULT 1`;
    // Steps live as long as their run's row, like events, and are deleted with it.
    await tx`
      CREATE TABLE ${steps} (
        run_id text NOT NULL,
        idx integer NOT NULL,
        name text NOT NULL,
        result text,
        error text,
        PRIMARY KEY (run_id, idx)
      )`;
  },
  async function eventsAsJson(tx, { events }) {
    // The log as json, not jsonb: an event is written once and read back whole, never looked
    // into, and json keeps the text as sent instead of converting it to jsonb's binary form on
    // every write. Rewrites the events table once.
    await tx`ALTER TABLE ${events} ALTER COLUMN event TYPE json USING event::json`;
  },
];

/** The schema version this package writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Key of the advisory locks taken by this package, paired with `hashtext(table)`. */
export const LOCK_NAMESPACE = {
  migrate: "@acp/store-postgres:migrate",
  sweep: "@acp/store-postgres:sweep",
} as const;

/**
 * Whether the tables of `tables` at schema `version` exist. `false` when none of the first three
 * (records, events, history) does while the schema row may say otherwise (someone dropped them
 * and left `<table>_schema`): they are created again from the first step, rather than every
 * operation failing on a missing table; a steps table left over is dropped then, with the runs
 * it belonged to.
 * @throws Error when only some are missing: that is damage to repair by hand, not to paper over.
 */
async function tablesAreThere(tx: Transaction, tables: Tables, version: number): Promise<boolean> {
  const names = [tables.name, `${tables.name}_events`, `${tables.name}_history`];
  // The steps table exists from version 3 on.
  if (version >= 3) names.push(`${tables.name}_steps`);
  const rows = await tx<{ name: string; present: boolean }[]>`
    SELECT name, to_regclass(quote_ident(name)) IS NOT NULL AS present
    FROM unnest(${names}::text[]) AS name`;
  const present = rows.filter((row) => row.present).map((row) => row.name);
  const missing = rows.filter((row) => !row.present).map((row) => row.name);
  if (missing.length === 0) return true;
  if (present.every((name) => name === `${tables.name}_steps`)) {
    await tx`DROP TABLE IF EXISTS ${tables.steps}`;
    return false;
  }
  throw new Error(
    `table ${missing.join(", ")} is missing while ${present.join(", ")} exists: restore it, or drop all the store's tables to start empty`,
  );
}

/**
 * Creates or upgrades the schema of `tables` to {@link SCHEMA_VERSION}. Idempotent.
 * @throws Error when the database holds a newer schema than this package knows.
 */
export async function migrateSchema(sql: Client, tables: Tables): Promise<void> {
  await sql.begin(async function migrateInTransaction(tx) {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${LOCK_NAMESPACE.migrate}), hashtext(${tables.name}))`;
    // "already exists, skipping" notices would reach the application's console on every start.
    await tx`SET LOCAL client_min_messages TO warning`;
    await tx`CREATE TABLE IF NOT EXISTS ${tables.schema} (version integer NOT NULL)`;
    const [row] = await tx<{ version: number | null }[]>`SELECT max(version) AS version FROM ${tables.schema}`;
    const recorded = row?.version ?? 0;
    const current = (await tablesAreThere(tx, tables, recorded)) ? recorded : 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `table ${tables.name} has schema version ${current}, newer than the ${SCHEMA_VERSION} this package supports`,
      );
    }
    if (current === SCHEMA_VERSION) return;
    for (const step of MIGRATIONS.slice(current)) await step(tx, tables);
    await tx`DELETE FROM ${tables.schema}`;
    await tx`INSERT INTO ${tables.schema} (version) VALUES (${SCHEMA_VERSION})`;
  });
}

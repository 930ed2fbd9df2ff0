import { label, stepRecord } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { SCHEMA_VERSION } from "../src/schema.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

/** The tables whose name starts with `table`, in the current schema. */
async function tablesNamed(table: string): Promise<string[]> {
  const rows = await admin<{ name: string }[]>`
    SELECT tablename AS name FROM pg_tables
    WHERE schemaname = current_schema() AND tablename LIKE ${`${table}%`}
    ORDER BY tablename`;
  return rows.map((row) => row.name);
}

describe("PostgreSQLStore.migrate", () => {
  it("upgrades tables of schema version 1, keeping runs findable by owner and sessions' sizes", async () => {
    const table = randomName("acp_test");
    const sql = connect({ max: 1 });
    const store = new PostgreSQLStore({ sql, table, sweepIntervalMs: 0 });
    try {
      // Version 1 as it was released: the tables without the owner and bytes columns.
      await admin`CREATE TABLE ${admin(`${table}_schema`)} (version integer NOT NULL)`;
      await admin`INSERT INTO ${admin(`${table}_schema`)} (version) VALUES (1)`;
      await admin`CREATE TABLE ${admin(table)} (kind text NOT NULL, id text NOT NULL, value jsonb,
        version integer NOT NULL DEFAULT 0, ended boolean NOT NULL DEFAULT false,
        last_seq integer NOT NULL DEFAULT 0, expires_at timestamptz NOT NULL, PRIMARY KEY (kind, id))`;
      await admin`CREATE TABLE ${admin(`${table}_events`)} (run_id text NOT NULL, seq integer NOT NULL,
        event jsonb NOT NULL, PRIMARY KEY (run_id, seq))`;
      await admin`CREATE TABLE ${admin(`${table}_history`)} (session_id text NOT NULL, position integer NOT NULL,
        item_id text NOT NULL, message jsonb NOT NULL, PRIMARY KEY (session_id, position))`;
      const value = JSON.stringify({ run: { run_id: "old-run", status: "in-progress" }, owner: "gone" });
      await admin`INSERT INTO ${admin(table)} (kind, id, value, version, expires_at)
        VALUES ('run', 'old-run', ${value}::jsonb, 1, now() + interval '1 hour'),
               ('session', 'old-session', NULL, 0, now() + interval '1 hour')`;
      await admin`INSERT INTO ${admin(`${table}_history`)} VALUES ('old-session', 1, 'old-item', '{"role":"user"}'::jsonb)`;

      await store.migrate();
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: SCHEMA_VERSION }]);
      expect(await store.listOrphanedRuns()).toEqual(["old-run"]);
      expect(await store.getSession("old-session")).toEqual({ itemIds: ["old-item"], bytes: 16 });
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("upgrades tables of schema version 2: their runs are at epoch 1 and take steps", async () => {
    const table = randomName("acp_test");
    const sql = connect({ max: 1 });
    const store = new PostgreSQLStore({ sql, table, sweepIntervalMs: 0 });
    try {
      // Version 2 as it was released: version 1 with the owner and bytes columns, no epoch, no steps.
      await admin`CREATE TABLE ${admin(`${table}_schema`)} (version integer NOT NULL)`;
      await admin`INSERT INTO ${admin(`${table}_schema`)} (version) VALUES (2)`;
      await admin`CREATE TABLE ${admin(table)} (kind text NOT NULL, id text NOT NULL, value jsonb,
        version integer NOT NULL DEFAULT 0, ended boolean NOT NULL DEFAULT false,
        last_seq integer NOT NULL DEFAULT 0, expires_at timestamptz NOT NULL, owner text, PRIMARY KEY (kind, id))`;
      await admin`CREATE TABLE ${admin(`${table}_events`)} (run_id text NOT NULL, seq integer NOT NULL,
        event jsonb NOT NULL, PRIMARY KEY (run_id, seq))`;
      await admin`CREATE TABLE ${admin(`${table}_history`)} (session_id text NOT NULL, position integer NOT NULL,
        item_id text NOT NULL, message jsonb NOT NULL, bytes integer NOT NULL DEFAULT 0, PRIMARY KEY (session_id, position))`;
      const value = JSON.stringify({ run: { run_id: "old-run", status: "in-progress" }, owner: "gone" });
      await admin`INSERT INTO ${admin(table)} (kind, id, value, version, owner, last_seq, expires_at)
        VALUES ('run', 'old-run', ${value}::jsonb, 1, 'gone', 1, now() + interval '1 hour')`;
      await admin`INSERT INTO ${admin(`${table}_events`)} VALUES ('old-run', 1, ${JSON.stringify(label(0))}::text::jsonb)`;

      await store.migrate();
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: SCHEMA_VERSION }]);
      expect((await store.getRun("old-run"))?.epoch).toBeUndefined();
      expect(await store.appendEvents("old-run", [label(1)], 2)).toBeNull();
      expect(await store.appendEvents("old-run", [label(1)], 1)).toBe(2);
      expect(await store.recordStep("old-run", 1, stepRecord(0, "a", "x"))).toBe(true);
      expect(await store.readSteps("old-run")).toEqual([stepRecord(0, "a", "x")]);
      // Version 4: the log is json; events written as jsonb before read back the same.
      const [column] = await admin`SELECT data_type FROM information_schema.columns
        WHERE table_name = ${`${table}_events`} AND column_name = 'event'`;
      expect(column).toEqual({ data_type: "json" });
      expect((await store.readEvents("old-run", 0)).map((stored) => stored.event)).toEqual([label(0), label(1)]);
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("creates one schema when 5 instances migrate the same table at once", async () => {
    const table = randomName("acp_test");
    const instances = Array.from({ length: 5 }, () => {
      const sql = connect({ max: 2 });
      return { sql, store: new PostgreSQLStore({ sql, table }) };
    });
    try {
      await Promise.all(instances.map(({ store }) => store.migrate()));
      expect(await tablesNamed(table)).toEqual([
        table,
        `${table}_events`,
        `${table}_history`,
        `${table}_schema`,
        `${table}_steps`,
      ]);
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: SCHEMA_VERSION }]);

      // Again, from a store that has not migrated yet, and from one that has: nothing changes.
      const late = new PostgreSQLStore({ sql: instances[0]!.sql, table });
      await late.migrate();
      await instances[1]!.store.migrate();
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: SCHEMA_VERSION }]);
      await late.close();
    } finally {
      await Promise.all(instances.map(({ store }) => store.close()));
      await dropTables(admin, table);
      await Promise.all(instances.map(({ sql }) => sql.end({ timeout: 5 })));
    }
  });

  it("runs by itself before the first operation, and not in the constructor", async () => {
    const table = randomName("acp_test");
    const sql = connect({ max: 1 });
    const store = new PostgreSQLStore({ sql, table });
    try {
      expect(await tablesNamed(table)).toEqual([]);
      expect(await store.getRun("unknown")).toBeUndefined();
      expect(await tablesNamed(table)).toHaveLength(5);
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("refuses tables of a newer schema version than it knows", async () => {
    const table = randomName("acp_test");
    const sql = connect({ max: 1 });
    const current = new PostgreSQLStore({ sql, table });
    const older = new PostgreSQLStore({ sql, table });
    try {
      await current.migrate();
      await admin`UPDATE ${admin(`${table}_schema`)} SET version = 99`;
      await expect(older.migrate()).rejects.toThrow(
        new RegExp(`\\[store-postgres\\] migrate failed: .*schema version 99, newer than the ${SCHEMA_VERSION}`),
      );
    } finally {
      await Promise.all([current.close(), older.close()]);
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });
});

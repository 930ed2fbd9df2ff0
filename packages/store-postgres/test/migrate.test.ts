import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
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
  it("creates one schema when 5 instances migrate the same table at once", async () => {
    const table = randomName("acp_test");
    const instances = Array.from({ length: 5 }, () => {
      const sql = connect({ max: 2 });
      return { sql, store: new PostgreSQLStore({ sql, table }) };
    });
    try {
      await Promise.all(instances.map(({ store }) => store.migrate()));
      expect(await tablesNamed(table)).toEqual([table, `${table}_events`, `${table}_history`, `${table}_schema`]);
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: 1 }]);

      // Again, from a store that has not migrated yet, and from one that has: nothing changes.
      const late = new PostgreSQLStore({ sql: instances[0]!.sql, table });
      await late.migrate();
      await instances[1]!.store.migrate();
      expect(await admin`SELECT version FROM ${admin(`${table}_schema`)}`).toEqual([{ version: 1 }]);
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
      expect(await tablesNamed(table)).toHaveLength(4);
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
        /\[store-postgres\] migrate failed: .*schema version 99, newer than the 1/,
      );
    } finally {
      await Promise.all([current.close(), older.close()]);
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });
});

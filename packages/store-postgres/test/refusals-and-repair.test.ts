import { StoreError, StoreRefusedError } from "@acp/core";
import { label, newRun } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { refusalOf } from "../src/refusal.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

/** A store on its own tables, released after `body`. */
async function withStore(body: (store: PostgreSQLStore, table: string) => Promise<void>): Promise<void> {
  const sql = connect({ max: 2 });
  const table = randomName("acp_test");
  const store = new PostgreSQLStore({ sql, table, channel: randomName("acp_test"), sweepIntervalMs: 0 });
  try {
    await body(store, table);
  } finally {
    await store.close();
    await dropTables(admin, table);
    await sql.end({ timeout: 5 });
  }
}

describe("PostgreSQLStore refusals", () => {
  it("refuses text PostgreSQL cannot hold with a StoreRefusedError carrying the SQLSTATE, and writes nothing", async () => {
    await withStore(async (store) => {
      const record = newRun("in-progress");
      record.run.output = [
        { role: "agent/x", parts: [{ content_type: "text/plain", content: "a\u0000b", content_encoding: "plain" }] },
      ];
      const refused = store.createRun(record, [label("first")]);
      await expect(refused).rejects.toBeInstanceOf(StoreRefusedError);
      await expect(refused).rejects.toThrow(
        /^\[acp\] \[store-postgres\] createRun refused the value \(SQLSTATE 22P05\): /,
      );
      expect(await store.getRun(record.run.run_id)).toBeUndefined();

      const plain = newRun("in-progress");
      await store.createRun(plain, []);
      // The log is json, kept as sent: it holds such text exactly (the record, jsonb, refuses it).
      expect(await store.appendEvents(plain.run.run_id, [label("\ud800")])).toBe(1);
      expect((await store.readEvents(plain.run.run_id, 0)).map((stored) => stored.event)).toEqual([label("\ud800")]);
    });
  });

  it("counts SQLSTATE classes 22, 23 and 54 as refusals, and nothing else", () => {
    const failure = (code: string) => Object.assign(new Error(`failure ${code}`), { code });
    for (const code of ["22P05", "22001", "23505", "23514", "54000", "54001"]) {
      const error = refusalOf("updateRun", failure(code));
      expect(error, code).toBeInstanceOf(StoreRefusedError);
      expect(error?.message).toBe(
        `[acp] [store-postgres] updateRun refused the value (SQLSTATE ${code}): failure ${code}`,
      );
    }
    for (const code of ["40001", "57P01", "08006", "42P01", "53300"])
      expect(refusalOf("updateRun", failure(code))).toBeUndefined();
    expect(refusalOf("updateRun", new Error("ECONNRESET"))).toBeUndefined();
  });
});

describe("PostgreSQLStore with its tables dropped", () => {
  it("recreates the tables dropped while the schema-version row survived, instead of failing forever", async () => {
    await withStore(async (store, table) => {
      const before = newRun("in-progress");
      expect(await store.createRun(before, [])).toBe(true);
      await admin`DROP TABLE ${admin([table, `${table}_events`, `${table}_history`])}`;

      // The store that had migrated: its next operations find the tables again.
      const after = newRun("in-progress");
      expect(await store.createRun(after, [label("again")])).toBe(true);
      expect((await store.getRun(after.run.run_id))?.version).toBe(1);
      expect(await store.readEvents(after.run.run_id, 0)).toEqual([{ seq: 1, event: label("again") }]);
      expect(await store.getRun(before.run.run_id)).toBeUndefined();

      // A store opened afterwards over the same tables, after another drop.
      await admin`DROP TABLE ${admin([table, `${table}_events`, `${table}_history`])}`;
      const fresh = new PostgreSQLStore({ sql: admin, table, sweepIntervalMs: 0 });
      try {
        await fresh.migrate();
        expect(await fresh.getRun(after.run.run_id)).toBeUndefined();
        expect(await fresh.createRun(newRun("created"), [])).toBe(true);
      } finally {
        await fresh.close();
      }
    });
  });

  it("refuses to guess when only some of its tables are gone", async () => {
    await withStore(async (store, table) => {
      await store.migrate();
      await admin`DROP TABLE ${admin(`${table}_events`)}`;
      const fresh = new PostgreSQLStore({ sql: admin, table, sweepIntervalMs: 0 });
      try {
        const failed = fresh.migrate();
        await expect(failed).rejects.toBeInstanceOf(StoreError);
        await expect(failed).rejects.toThrow(
          new RegExp(`table ${table}_events is missing while ${table}, ${table}_history, ${table}_steps exists`),
        );
      } finally {
        await fresh.close();
      }
    });
  });
});

import { StoreError } from "@acp/core";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { connect } from "./database.ts";

// Never used for a query: the constructor must not touch the database.
const sql = connect({ max: 1 });
afterAll(() => sql.end({ timeout: 1 }));

describe("PostgreSQLStore options", () => {
  it.each(["acp-store", "1runs", "", "runs; DROP TABLE users", 'acp"store', "a".repeat(64), "ünïcode"])(
    "rejects the table name %j at construction",
    (table) => {
      expect(() => new PostgreSQLStore({ sql, table })).toThrow(/table must be an SQL identifier/);
    },
  );

  it("rejects a table name too long for its derived table names", () => {
    expect(() => new PostgreSQLStore({ sql, table: "a".repeat(56) })).toThrow(/table must be at most 55 characters/);
    expect(() => new PostgreSQLStore({ sql, table: "a".repeat(55) })).not.toThrow();
  });

  it.each(["acp update", "acp-update", "", "x'); SELECT pg_sleep(10); --", "b".repeat(64)])(
    "rejects the channel name %j at construction",
    (channel) => {
      expect(() => new PostgreSQLStore({ sql, channel })).toThrow(/channel must be an SQL identifier/);
    },
  );

  it("accepts identifiers of up to 63 characters, in any case", () => {
    expect(() => new PostgreSQLStore({ sql, table: "_Acp_Runs_2", channel: "C".repeat(63) })).not.toThrow();
  });

  it("rejects a TTL or sweep interval that is not a usable number of milliseconds", () => {
    expect(() => new PostgreSQLStore({ sql, ttlMs: 0 })).toThrow(/ttlMs must be a positive number/);
    expect(() => new PostgreSQLStore({ sql, ttlMs: Number.NaN })).toThrow(/ttlMs/);
    expect(() => new PostgreSQLStore({ sql, sweepIntervalMs: -1 })).toThrow(/sweepIntervalMs/);
    expect(() => new PostgreSQLStore({ sql, sweepIntervalMs: 2 ** 31 })).toThrow(/sweepIntervalMs/);
    expect(() => new PostgreSQLStore({ sql, sweepIntervalMs: 0 })).not.toThrow();
  });

  it("rejects something that is not a postgres.js instance", () => {
    expect(() => new PostgreSQLStore({ sql: {} as never })).toThrow(/sql must be a postgres.js instance/);
  });

  it("rejects a postgres.js instance that transforms column names or JSON", async () => {
    const camel = postgres({ transform: postgres.camel, max: 1 });
    try {
      expect(() => new PostgreSQLStore({ sql: camel })).toThrow(/sql must not transform/);
    } finally {
      await camel.end({ timeout: 0 });
    }
  });

  it("rejects every operation with a StoreError that keeps the cause when the server is unreachable", async () => {
    // Port 1 on loopback refuses connections at once.
    const unreachable = postgres({ host: "127.0.0.1", port: 1, max: 1, connect_timeout: 2 });
    const store = new PostgreSQLStore({ sql: unreachable });
    try {
      const failure = await store.getRun("any").then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(StoreError);
      expect((failure as StoreError).message).toMatch(/^\[acp\] \[store-postgres\] migrate failed: .*ECONNREFUSED/);
      expect((failure as StoreError).cause).toBeInstanceOf(Error);
      await expect(store.ping()).rejects.toThrow(/\[acp\] \[store-postgres\] ping failed/);
      await expect(store.subscribe("any", () => undefined)).rejects.toThrow(
        /\[acp\] \[store-postgres\] subscribe failed/,
      );
    } finally {
      await store.close();
      await unreachable.end({ timeout: 0 });
    }
  });
});

import { StoreError } from "@acp/core";
import { ListenerProbe, label, newRun } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

describe("PostgreSQLStore notifications after writes", () => {
  it("resolves a committed write whose notification fails, and reports the failure to onNotifyError", async () => {
    const sql = connect({ max: 2 });
    const table = randomName("acp_test");
    let report!: (error: StoreError) => void;
    const reported = new Promise<StoreError>((resolve) => (report = resolve));
    const store = new PostgreSQLStore({
      sql,
      table,
      channel: randomName("acp_test"),
      onNotifyError: (error) => report(error),
    });
    try {
      // PostgreSQL refuses notification payloads of 8,000 bytes or more, and the payload holds the run id.
      const record = newRun("in-progress");
      record.run.run_id = `long-${"x".repeat(8_000)}`;
      expect(await store.createRun(record, [])).toBe(true);
      expect(await store.appendEvents(record.run.run_id, [label("landed")])).toBe(1);
      expect(await store.readEvents(record.run.run_id, 0)).toEqual([{ seq: 1, event: label("landed") }]);
      const failure = await reported;
      expect(failure).toBeInstanceOf(StoreError);
      expect(failure.message).toMatch(/\[store-postgres\] notification failed: .*payload string too long/);
      expect(failure.cause).toBeInstanceOf(Error);
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("sends the notifications of earlier writes before close resolves, so ending sql right after loses none", async () => {
    const table = randomName("acp_test");
    const channel = randomName("acp_test");
    const writerSql = connect({ max: 2 });
    const readerSql = connect({ max: 2 });
    const onNotifyError = vi.fn();
    const writer = new PostgreSQLStore({ sql: writerSql, table, channel, onNotifyError });
    const reader = new PostgreSQLStore({ sql: readerSql, table, channel });
    try {
      const runs = Array.from({ length: 20 }, () => newRun("in-progress"));
      await Promise.all(runs.map((record) => writer.createRun(record, [])));
      const probes = runs.map(() => new ListenerProbe());
      const heard = probes.map((probe) => probe.next((kind) => kind === "events"));
      const unsubscribes = await Promise.all(
        runs.map((record, i) => reader.subscribe(record.run.run_id, probes[i]!.listener)),
      );
      // Concurrent writes: their notifications leave in more than one batch, some after the writes resolved.
      await Promise.all(runs.map((record) => writer.appendEvents(record.run.run_id, [label("last")])));
      await writer.close();
      await writerSql.end({ timeout: 5 });
      await Promise.all(heard);
      expect(onNotifyError).not.toHaveBeenCalled();
      await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe()));
    } finally {
      await Promise.all([writer.close(), reader.close()]);
      await dropTables(admin, table);
      await Promise.all([writerSql.end({ timeout: 5 }), readerSql.end({ timeout: 5 })]);
    }
  });
});

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { historyItem, ListenerProbe, label, newRun, writeHistory } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const SHORT_TTL_MS = 200;
const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

/** Rows of expired runs and sessions stay until a sweep: writes must take them over. */
describe("PostgreSQLStore over expired rows that were not swept", () => {
  it("creates a run over an expired one of the same id, without its events, and wakes its old subscribers", async () => {
    const sql = connect({ max: 2 });
    const table = randomName("acp_test");
    const store = new PostgreSQLStore({
      sql,
      table,
      channel: randomName("acp_test"),
      ttlMs: SHORT_TTL_MS,
      sweepIntervalMs: 0,
    });
    try {
      const record = newRun("in-progress");
      const runId = record.run.run_id;
      await store.createRun(record, [label("old 1"), label("old 2")]);
      await store.updateRun(runId, 1, record, []);
      const probe = new ListenerProbe();
      const unsubscribe = await store.subscribe(runId, probe.listener);
      await sleep(SHORT_TTL_MS * 2);

      const woken = probe.next((kind) => kind === "record");
      expect(await store.createRun(record, [label("new")])).toBe(true);
      await woken;
      expect((await store.getRun(runId))?.version).toBe(1);
      expect(await store.readEvents(runId, 0)).toEqual([{ seq: 1, event: label("new") }]);
      expect(await store.createRun(record, [])).toBe(false);
      await unsubscribe();
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("starts an expired session over, keeping only the items written after", async () => {
    const sql = connect({ max: 2 });
    const table = randomName("acp_test");
    const store = new PostgreSQLStore({ sql, table, ttlMs: SHORT_TTL_MS, sweepIntervalMs: 0 });
    try {
      const sessionId = randomUUID();
      const old = historyItem("old");
      await writeHistory(store, sessionId, [old]);
      await sleep(SHORT_TTL_MS * 2);

      const fresh = [historyItem("new 1"), historyItem("new 2")];
      await writeHistory(store, sessionId, fresh);
      expect(await store.getHistory(sessionId)).toEqual(fresh);
      expect(await store.getHistoryItem(old.id)).toBeUndefined();
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });
});

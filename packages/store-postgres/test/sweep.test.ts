import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { StoreError } from "@acp/core";
import { historyItem, label, newRun, stepRecord } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const SHORT_TTL_MS = 200;
const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

interface RowCounts {
  records: number;
  events: number;
  history: number;
  steps: number;
}

/** Row counts of the four data tables. */
async function rowCounts(table: string): Promise<RowCounts> {
  const [counts] = await admin<RowCounts[]>`
    SELECT (SELECT count(*)::int FROM ${admin(table)}) AS records,
           (SELECT count(*)::int FROM ${admin(`${table}_events`)}) AS events,
           (SELECT count(*)::int FROM ${admin(`${table}_history`)}) AS history,
           (SELECT count(*)::int FROM ${admin(`${table}_steps`)}) AS steps`;
  return counts!;
}

/** Writes one run with two events and a step, one session with two items (written with the run's update) and one heartbeat. */
async function writeSome(store: PostgreSQLStore): Promise<void> {
  const record = newRun("in-progress");
  await store.createRun(record, [label(1)]);
  await store.appendEvents(record.run.run_id, [label(2)]);
  expect(await store.recordStep(record.run.run_id, 1, stepRecord(0, "a", 1))).toBe(true);
  const history = { sessionId: randomUUID(), items: [historyItem("hi"), historyItem("hi")] };
  expect((await store.updateRun(record.run.run_id, 1, record, [], { history })).ok).toBe(true);
  await store.heartbeat(`instance-${randomUUID()}`, SHORT_TTL_MS);
}

describe("PostgreSQLStore.sweep", () => {
  it("deletes expired runs with their events and steps, sessions with their items, and heartbeats; keeps live rows", async () => {
    const sql = connect({ max: 2 });
    const table = randomName("acp_test");
    const shortLived = new PostgreSQLStore({ sql, table, ttlMs: SHORT_TTL_MS, sweepIntervalMs: 0 });
    const longLived = new PostgreSQLStore({ sql, table, sweepIntervalMs: 0 });
    try {
      await writeSome(shortLived);
      const kept = newRun("in-progress");
      await longLived.createRun(kept, [label("kept")]);
      await longLived.recordStep(kept.run.run_id, 1, stepRecord(0, "kept", 1));
      expect(await rowCounts(table)).toEqual({ records: 4, events: 3, history: 2, steps: 2 });

      await sleep(SHORT_TTL_MS * 2);
      expect(await shortLived.sweep()).toBe(3);
      expect(await rowCounts(table)).toEqual({ records: 1, events: 1, history: 0, steps: 1 });
      expect(await shortLived.sweep()).toBe(0);
    } finally {
      await Promise.all([shortLived.close(), longLived.close()]);
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });

  it("deletes each expired row once when several instances sweep at the same time", async () => {
    const table = randomName("acp_test");
    const instances = Array.from({ length: 4 }, () => {
      const sql = connect({ max: 1 });
      return { sql, store: new PostgreSQLStore({ sql, table, ttlMs: SHORT_TTL_MS, sweepIntervalMs: 0 }) };
    });
    try {
      for (const { store } of instances) await writeSome(store);
      await sleep(SHORT_TTL_MS * 2);
      const deleted = await Promise.all(instances.map(({ store }) => store.sweep()));
      // Several sweeps may run one after another; together they delete every row once.
      expect(deleted.reduce((sum, count) => sum + count, 0)).toBe(4 * 3);
      expect(await rowCounts(table)).toEqual({ records: 0, events: 0, history: 0, steps: 0 });
    } finally {
      await Promise.all(instances.map(({ store }) => store.close()));
      await dropTables(admin, table);
      await Promise.all(instances.map(({ sql }) => sql.end({ timeout: 5 })));
    }
  });

  it("sweeps on its timer once the schema is in place, and reports failures to onSweepError", async () => {
    const sql = connect({ max: 2 });
    const table = randomName("acp_test");
    const errors: StoreError[] = [];
    const store = new PostgreSQLStore({
      sql,
      table,
      ttlMs: SHORT_TTL_MS,
      sweepIntervalMs: 50,
      onSweepError: (error) => errors.push(error),
    });
    try {
      await writeSome(store);
      await vi.waitFor(
        async () => expect(await rowCounts(table)).toEqual({ records: 0, events: 0, history: 0, steps: 0 }),
        {
          timeout: 5_000,
          interval: 50,
        },
      );
      expect(errors).toEqual([]);

      // A damaged table (dropped ones are recreated, see refusals-and-repair.test.ts).
      await admin`ALTER TABLE ${admin(`${table}_events`)} RENAME COLUMN run_id TO renamed`;
      await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 5_000, interval: 50 });
      expect(errors[0]).toBeInstanceOf(StoreError);
      expect(errors[0]!.message).toMatch(/^\[acp\] \[store-postgres\] sweep failed: .*does not exist/);
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });
});

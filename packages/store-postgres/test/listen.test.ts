import type { StoredEvent } from "@acp/core";
import { ListenerProbe, label, newRun } from "@acp/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const admin = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => admin.end({ timeout: 5 }));

/** Connections open under `applicationName`, and the pids of those whose last query was LISTEN. */
async function connectionsOf(applicationName: string): Promise<{ total: number; listening: number[] }> {
  const rows = await admin<{ pid: number; query: string }[]>`
    SELECT pid, query FROM pg_stat_activity WHERE application_name = ${applicationName}`;
  return {
    total: rows.length,
    listening: rows.filter((row) => /^listen /i.test(row.query)).map((row) => row.pid),
  };
}

describe("PostgreSQLStore notifications", () => {
  it("serves 200 subscriptions to 200 runs over pool size + 1 connections, and notifies each", async () => {
    const applicationName = randomName("acp_test_pool");
    const sql = connect({ max: 4, connection: { application_name: applicationName } });
    const table = randomName("acp_test");
    const store = new PostgreSQLStore({ sql, table, channel: randomName("acp_test") });
    try {
      const runs = Array.from({ length: 200 }, () => newRun("in-progress"));
      // 200 concurrent transactions: the pool opens all of its 4 connections.
      await Promise.all(runs.map((record) => store.createRun(record, [])));
      const probes = runs.map(() => new ListenerProbe());
      const notified = probes.map((probe) => probe.next((kind) => kind === "events"));
      const unsubscribes = await Promise.all(
        runs.map((record, i) => store.subscribe(record.run.run_id, probes[i]!.listener)),
      );
      await Promise.all(runs.map((record, i) => store.appendEvents(record.run.run_id, [label(i)])));
      await Promise.all(notified);

      const connections = await connectionsOf(applicationName);
      expect(connections.listening).toHaveLength(1);
      expect(connections.total).toBe(4 + 1);
      await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe()));
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  }, 30_000);

  it("listens again after its LISTEN connection drops, and wakes subscribers so readers lose nothing", async () => {
    const applicationName = randomName("acp_test_listen");
    const sql = connect({ max: 2, connection: { application_name: applicationName } });
    const writerSql = connect({ max: 2 });
    const table = randomName("acp_test");
    const channel = randomName("acp_test");
    const store = new PostgreSQLStore({ sql, table, channel });
    const writer = new PostgreSQLStore({ sql: writerSql, table, channel });
    try {
      const record = newRun("in-progress");
      await writer.createRun(record, []);
      const runId = record.run.run_id;
      const probe = new ListenerProbe();
      const unsubscribe = await store.subscribe(runId, probe.listener);
      const [listener] = (await connectionsOf(applicationName)).listening;
      expect(listener).toBeTypeOf("number");

      // Kill the LISTEN connection and write at once: this event's notification may be lost.
      const reconnected = probe.next((kind) => kind === undefined);
      await admin`SELECT pg_terminate_backend(${listener!})`;
      await writer.appendEvents(runId, [label("during the outage")]);

      // A reader reads after each call, as the runtime does; it must reach seq 1 without polling.
      const seen: StoredEvent[] = [];
      while (seen.length === 0) {
        const woken = probe.next();
        seen.push(...(await store.readEvents(runId, 0)));
        if (seen.length === 0) await woken;
      }
      expect(seen).toEqual([{ seq: 1, event: label("during the outage") }]);
      await reconnected;

      // The new LISTEN connection carries notifications again.
      const { listening } = await connectionsOf(applicationName);
      expect(listening).toHaveLength(1);
      expect(listening[0]).not.toBe(listener);
      const notified = probe.next((kind) => kind === "events");
      await writer.appendEvents(runId, [label("after the outage")]);
      await notified;
      await unsubscribe();
    } finally {
      await Promise.all([store.close(), writer.close()]);
      await dropTables(admin, table);
      await Promise.all([sql.end({ timeout: 5 }), writerSql.end({ timeout: 5 })]);
    }
  }, 30_000);

  it("stops listening on close, and leaves the sql instance open", async () => {
    const applicationName = randomName("acp_test_close");
    const sql = connect({ max: 1, connection: { application_name: applicationName } });
    const table = randomName("acp_test");
    const store = new PostgreSQLStore({ sql, table, channel: randomName("acp_test") });
    try {
      const probe = new ListenerProbe();
      await store.subscribe(newRun("in-progress").run.run_id, probe.listener);
      expect((await connectionsOf(applicationName)).listening).toHaveLength(1);
      await store.close();
      expect((await connectionsOf(applicationName)).listening).toHaveLength(0);
      expect(await sql`SELECT 1 AS ok`).toEqual([{ ok: 1 }]);
      await expect(store.subscribe("any", probe.listener)).rejects.toThrow(
        /\[store-postgres\] subscribe failed: the store is closed/,
      );
    } finally {
      await store.close();
      await dropTables(admin, table);
      await sql.end({ timeout: 5 });
    }
  });
});

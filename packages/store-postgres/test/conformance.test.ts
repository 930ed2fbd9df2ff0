import type { Store } from "@acp/core";
import { describeStoreConformance } from "@acp/core/testing";
import type { Sql } from "postgres";
import { beforeAll, describe, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

interface Opened {
  sql: Sql;
  table: string;
  channel: string;
  ttlMs: number;
  /** The store made by `create` owns the tables; its peers only read and write them. */
  ownsTables: boolean;
}

const opened = new Map<Store, Opened>();

beforeAll(assertReachable);

describeStoreConformance(
  {
    name: "PostgreSQLStore",
    async create({ ttlMs }) {
      const sql = connect();
      const table = randomName("acp_test");
      const channel = randomName("acp_test");
      const store = new PostgreSQLStore({ sql, table, channel, ttlMs });
      opened.set(store, { sql, table, channel, ttlMs, ownsTables: true });
      return store;
    },
    async peer(store) {
      const { table, channel, ttlMs } = openedBy(store);
      const sql = connect();
      const peer = new PostgreSQLStore({ sql, table, channel, ttlMs });
      opened.set(peer, { sql, table, channel, ttlMs, ownsTables: false });
      return peer;
    },
    async destroy(store) {
      const { sql, table, ownsTables } = openedBy(store);
      opened.delete(store);
      try {
        await store.close?.();
        if (ownsTables) await dropTables(sql, table);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  },
  { describe, it },
);

function openedBy(store: Store): Opened {
  const found = opened.get(store);
  if (!found) throw new Error("this store was not made by the conformance target");
  return found;
}

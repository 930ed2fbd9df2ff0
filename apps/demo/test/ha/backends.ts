/**
 * The shared backends the HA tests run on: the real Redis and PostgreSQL of this machine, each
 * test file in its own namespace (a Redis key prefix, PostgreSQL table and channel names), removed
 * afterwards.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { createClient } from "redis";

export interface Backend {
  name: "redis" | "postgres";
  /** Environment variables that point a demo instance at this backend's namespace. */
  env: Record<string, string>;
  /** Deletes the namespace. */
  cleanup(): Promise<void>;
}

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Deletes every key under `prefix`. */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const redis = await createClient({ url }).connect();
  try {
    for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 }))
      if (keys.length > 0) await redis.unlink(keys);
  } finally {
    await redis.close();
  }
}

/** Drops every table whose name starts with `table` (the store's tables are `<table>`, `<table>_events`, …). */
export async function dropPostgresTables(url: string, table: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const tables = await sql<
      { tablename: string }[]
    >`select tablename from pg_tables where tablename like ${`${table}%`}`;
    for (const { tablename } of tables) await sql`drop table if exists ${sql(tablename)} cascade`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export function redisBackend(): Backend {
  const prefix = `acptest${randomBytes(4).toString("hex")}`;
  return {
    name: "redis",
    env: { REDIS_URL, REDIS_PREFIX: prefix },
    cleanup: () => deleteRedisKeys(REDIS_URL, prefix),
  };
}

export function postgresBackend(): Backend {
  const table = `acp_test_${randomBytes(4).toString("hex")}`;
  return {
    name: "postgres",
    env: { DATABASE_URL, POSTGRES_TABLE: table, POSTGRES_CHANNEL: `${table}_update` },
    cleanup: () => dropPostgresTables(DATABASE_URL, table),
  };
}

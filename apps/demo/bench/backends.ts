/**
 * The stores the bench measures and how it looks into them: each measurement gets its own
 * namespace on this machine's Redis and PostgreSQL (a key prefix; table and channel names),
 * removed afterwards, and the probes read what the namespace costs there.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, readlink } from "node:fs/promises";
import postgres from "postgres";
import { createClient } from "redis";
import { deleteRedisKeys, dropPostgresTables } from "../test/ha/backends.ts";

export type StoreName = "memory" | "redis" | "postgres";
export const STORES: StoreName[] = ["memory", "redis", "postgres"];

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
export const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/** The query pool of every PostgreSQL bench server; the process holds one more connection, for LISTEN. */
export const POSTGRES_POOL = 10;

export interface Namespace {
  store: StoreName;
  /** The store variables of src/store-from-env.ts that point a server at this namespace. */
  env: Record<string, string>;
  /** Redis key prefix. */
  prefix?: string;
  /** PostgreSQL table name (the events live in `<table>_events`). */
  table?: string;
  /** PostgreSQL application_name of the server's connections. */
  applicationName?: string;
  /** Deletes everything stored under the namespace. */
  cleanup(): Promise<void>;
}

/** Namespaces not cleaned up yet, so that an interrupted bench can still remove them. */
const live = new Set<Namespace>();

/** Removes every namespace still in use; for an interrupted bench. */
export async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...live].map((space) => space.cleanup()));
}

/** A fresh namespace of `store`; its `cleanup` removes what was stored there. */
export function namespace(store: StoreName): Namespace {
  const space = createNamespace(store);
  const cleanup = space.cleanup;
  space.cleanup = async () => {
    await cleanup();
    live.delete(space);
  };
  live.add(space);
  return space;
}

function createNamespace(store: StoreName): Namespace {
  const tag = randomBytes(4).toString("hex");
  if (store === "redis") {
    const prefix = `acpbench${tag}`;
    return {
      store,
      prefix,
      env: { REDIS_URL, REDIS_PREFIX: prefix },
      cleanup: () => deleteRedisKeys(REDIS_URL, `${prefix}:`),
    };
  }
  if (store === "postgres") {
    const table = `acp_bench_${tag}`;
    const applicationName = `acp-bench-${tag}`;
    return {
      store,
      table,
      applicationName,
      env: {
        DATABASE_URL,
        POSTGRES_TABLE: table,
        POSTGRES_CHANNEL: `${table}_update`,
        POSTGRES_POOL_MAX: String(POSTGRES_POOL),
        POSTGRES_APPLICATION_NAME: applicationName,
      },
      cleanup: () => dropPostgresTables(DATABASE_URL, table),
    };
  }
  return { store, env: {}, cleanup: async () => {} };
}

/** Rejects with a readable message when a store the bench needs does not answer. */
export async function checkReachable(stores: StoreName[]): Promise<void> {
  if (stores.includes("redis")) {
    const redis = createClient({ url: REDIS_URL, socket: { connectTimeout: 3000, reconnectStrategy: false } });
    redis.on("error", () => {});
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      throw new Error(
        `Redis at ${REDIS_URL} does not answer (${(error as Error).message}); start it or set BENCH_REDIS_URL, or leave redis out with BENCH_STORES`,
      );
    } finally {
      if (redis.isOpen) await redis.close();
    }
  }
  if (stores.includes("postgres")) {
    const sql = postgres(DATABASE_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
    try {
      await sql`select 1`;
    } catch (error) {
      throw new Error(
        `PostgreSQL at ${DATABASE_URL} does not answer (${(error as Error).message}); start it or set BENCH_DATABASE_URL, or leave postgres out with BENCH_STORES`,
      );
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
}

/** Looks at what a Redis namespace holds. */
export class RedisProbe {
  readonly #redis = createClient({ url: REDIS_URL });
  constructor(readonly prefix: string) {}

  async open(): Promise<this> {
    await this.#redis.connect();
    return this;
  }

  /**
   * Bytes Redis uses for the run's event list (exact: every element sampled), its length, and
   * the bytes of the values (the events' JSON) themselves.
   */
  async eventLog(runId: string): Promise<{ bytes: number; events: number; valueBytes: number }> {
    const key = `${this.prefix}:{run:${runId}}:events`;
    const bytes = Number(await this.#redis.sendCommand(["MEMORY", "USAGE", key, "SAMPLES", "0"]));
    const events = await this.#redis.lRange(key, 0, -1);
    return {
      bytes,
      events: events.length,
      valueBytes: events.reduce((sum, event) => sum + Buffer.byteLength(event), 0),
    };
  }

  /** `used_memory` of INFO memory: the whole server's, so other clients add noise. */
  async usedMemory(): Promise<number> {
    const info = await this.#redis.info("memory");
    return Number(/used_memory:(\d+)/.exec(info)?.[1]);
  }

  async close(): Promise<void> {
    await this.#redis.close();
  }
}

/** Looks at what a PostgreSQL namespace holds. */
export class PostgresProbe {
  readonly #sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  constructor(readonly table: string) {}

  /** pg_total_relation_size of the events table: heap, indexes and TOAST. */
  async eventsTableBytes(): Promise<number> {
    const [row] = await this.#sql<
      { bytes: string }[]
    >`select pg_total_relation_size(${`${this.table}_events`}::regclass)::text as bytes`;
    return Number(row!.bytes);
  }

  /** The run's rows in the events table and the bytes of their `event` values as stored (jsonb, compressed when large). */
  async eventLog(runId: string): Promise<{ events: number; valueBytes: number }> {
    const [row] = await this.#sql<{ events: number; value_bytes: string }[]>`
      select count(*)::int as events, coalesce(sum(pg_column_size(event)), 0)::text as value_bytes
      from ${this.#sql(`${this.table}_events`)} where run_id = ${runId}`;
    return { events: row!.events, valueBytes: Number(row!.value_bytes) };
  }

  /** Connections open under `applicationName`, as pg_stat_activity lists them. */
  async connections(applicationName: string): Promise<number> {
    const [row] = await this.#sql<
      { count: number }[]
    >`select count(*)::int as count from pg_stat_activity where application_name = ${applicationName}`;
    return row!.count;
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }
}

/**
 * TCP connections that process `pid` holds to `remotePort` on this machine, from /proc: the
 * store connections of a server, whatever the store (Linux only; `undefined` elsewhere).
 */
export async function connectionsTo(pid: number, remotePort: number): Promise<number | undefined> {
  try {
    const inodes = new Set<string>();
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(match[1]!);
    }
    let count = 0;
    for (const table of ["tcp", "tcp6"]) {
      const text = await readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "");
      for (const line of text.split("\n").slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields.length < 10) continue;
        const port = parseInt(fields[2]!.split(":")[1]!, 16);
        // State 01 is ESTABLISHED; field 9 is the socket's inode.
        if (port === remotePort && fields[3] === "01" && inodes.has(fields[9]!)) count++;
      }
    }
    return count;
  } catch {
    return undefined;
  }
}

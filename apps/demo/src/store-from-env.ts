/**
 * Picks the store from the environment, as the HA guide documents: Redis (`REDIS_URL` or
 * `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`/`REDIS_DB`), PostgreSQL (`DATABASE_URL` or
 * `POSTGRES_HOST`/`POSTGRES_PORT`/`POSTGRES_USER`/`POSTGRES_PASSWORD`/`POSTGRES_DATABASE`), or,
 * with neither, the memory store. Both at once is a start-up error, not a silent choice.
 * `REDIS_PREFIX` (default `acp`) and `POSTGRES_TABLE` / `POSTGRES_CHANNEL` (default `acp_store` /
 * `acp_update`) let several deployments share one backend; `POSTGRES_POOL_MAX` (default 10) sizes
 * the query pool (the process holds one more connection, for LISTEN); `POSTGRES_APPLICATION_NAME`
 * (default `acp-server`) names its connections; `ACP_TTL_MS` sets how long data lives.
 */
import { consoleLogger, type Logger, type Store } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { PostgreSQLStore } from "@acp/store-postgres";
import { RedisStore } from "@acp/store-redis";
import postgres from "postgres";
import { createClient } from "redis";

export interface ChosenStore {
  store: Store;
  /** What to log: the backend and where it is, with any password redacted. */
  description: string;
  /** Closes the store and the connections opened for it. */
  close(): Promise<void>;
}

type Env = Record<string, string | undefined>;

const REDIS_VARS = ["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"];
const POSTGRES_VARS = [
  "DATABASE_URL",
  "POSTGRES_HOST",
  "POSTGRES_PORT",
  "POSTGRES_USER",
  "POSTGRES_PASSWORD",
  "POSTGRES_DATABASE",
];

/** A URL fit for logs: the password replaced by `***`. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparsable URL>";
  }
}

function isSet(env: Env, name: string): boolean {
  return (env[name] ?? "") !== "";
}

function redisUrl(env: Env): string {
  if (isSet(env, "REDIS_URL")) return env.REDIS_URL!;
  const url = new URL("redis://localhost");
  url.hostname = env.REDIS_HOST || "127.0.0.1";
  url.port = env.REDIS_PORT || "6379";
  if (env.REDIS_PASSWORD) url.password = env.REDIS_PASSWORD;
  url.pathname = `/${env.REDIS_DB || "0"}`;
  return url.toString();
}

function postgresUrl(env: Env): string {
  if (isSet(env, "DATABASE_URL")) return env.DATABASE_URL!;
  const url = new URL("postgres://localhost");
  url.hostname = env.POSTGRES_HOST || "127.0.0.1";
  url.port = env.POSTGRES_PORT || "5432";
  url.username = env.POSTGRES_USER || "postgres";
  if (env.POSTGRES_PASSWORD) url.password = env.POSTGRES_PASSWORD;
  url.pathname = `/${env.POSTGRES_DATABASE || "postgres"}`;
  return url.toString();
}

function ttl(env: Env): { ttlMs?: number } {
  if (!isSet(env, "ACP_TTL_MS")) return {};
  const ttlMs = Number(env.ACP_TTL_MS);
  if (!Number.isInteger(ttlMs) || ttlMs < 1000)
    throw new Error(
      `ACP_TTL_MS must be a whole number of milliseconds, at least 1000; got ${JSON.stringify(env.ACP_TTL_MS)}`,
    );
  return { ttlMs };
}

/**
 * Opens the configured store and checks that it answers; rejects with a readable message if not.
 * The store, and the Redis client's connection errors, log through `logger`.
 */
export async function storeFromEnv(env: Env = process.env, logger: Logger = consoleLogger): Promise<ChosenStore> {
  const wantsRedis = REDIS_VARS.some((name) => isSet(env, name));
  const wantsPostgres = POSTGRES_VARS.some((name) => isSet(env, name));
  if (wantsRedis && wantsPostgres) {
    throw new Error(
      "Both Redis (REDIS_*) and PostgreSQL (DATABASE_URL / POSTGRES_*) are configured; set the variables of one store only",
    );
  }
  if (wantsRedis) {
    const url = redisUrl(env);
    let connected = false;
    const redis = createClient({
      url,
      // While disconnected, commands fail at once instead of waiting in a queue: a request the
      // server answered 503 must not land later (a run created behind the client's back, or an
      // event appended again after the runtime retried it).
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 5000,
        // Fail fast at start-up; once connected, keep reconnecting (with a capped back-off) through outages.
        reconnectStrategy: (retries: number, cause: Error) => (connected ? Math.min(retries * 200, 2000) : cause),
      },
    });
    redis.on("error", (error: Error) =>
      logger.error({ store: "redis", url: redact(url) }, `redis connection error: ${error.message}`),
    );
    try {
      await redis.connect();
      connected = true;
    } catch (error) {
      if (redis.isOpen) redis.destroy();
      throw new Error(`Cannot reach Redis at ${redact(url)}: ${(error as Error).message}`);
    }
    const store = new RedisStore({ redis, prefix: env.REDIS_PREFIX || "acp", ...ttl(env), logger });
    return {
      store,
      description: `redis (${redact(url)})`,
      close: async () => {
        await store.close?.();
        await redis.close();
      },
    };
  }
  if (wantsPostgres) {
    const url = postgresUrl(env);
    const max = Number(env.POSTGRES_POOL_MAX || 10);
    if (!Number.isInteger(max) || max < 1)
      throw new Error(
        `POSTGRES_POOL_MAX must be a whole number of at least 1; got ${JSON.stringify(env.POSTGRES_POOL_MAX)}`,
      );
    const sql = postgres(url, {
      max,
      connect_timeout: 5,
      // postgres.js waits up to 20 s between attempts after a few failed ones, also before it
      // listens again: 2 s at most brings the pool and the LISTEN back soon after an outage.
      backoff: (retries: number) => Math.min(0.1 * 2 ** retries, 2),
      onnotice: () => {},
      connection: { application_name: env.POSTGRES_APPLICATION_NAME || "acp-server" },
    });
    const store = new PostgreSQLStore({
      sql,
      table: env.POSTGRES_TABLE || "acp_store",
      channel: env.POSTGRES_CHANNEL || "acp_update",
      ...ttl(env),
      logger,
    });
    try {
      await store.migrate();
    } catch (error) {
      await sql.end({ timeout: 1 });
      throw new Error(`Cannot reach PostgreSQL at ${redact(url)}: ${(error as Error).message}`);
    }
    return {
      store,
      description: `postgres (${redact(url)})`,
      close: async () => {
        await store.close?.();
        await sql.end({ timeout: 5 });
      },
    };
  }
  const store = new MemoryStore({ ...ttl(env), logger });
  return {
    store,
    description: "memory (single instance: set REDIS_* or POSTGRES_* for high availability)",
    close: async () => store.close?.(),
  };
}

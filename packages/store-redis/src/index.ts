/**
 * `@acp/store-redis`: a Redis (and Redis Cluster) `Store` for `@acp/core`, so that several ACP
 * server instances share runs, events, sessions and cancellation.
 * @module
 */

export type { RedisClientLike, RedisClusterLike, RedisConnection } from "./connection.ts";
export { RedisStore, type RedisStoreOptions } from "./redis-store.ts";

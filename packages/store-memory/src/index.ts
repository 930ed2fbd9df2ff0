/**
 * `@acp/store-memory`: an in-process `Store` for `@acp/core`, with TTL and a size limit.
 * @module
 */
export { MemoryStore, type MemoryStoreOptions } from "./memory-store.ts";

/** The options every store accepts, and their resolution. */
import type { Logger } from "../logger.ts";

/** How long runs, their events and sessions live after their last write when `ttlMs` is not given: one hour. */
export const DEFAULT_TTL_MS = 3_600_000;

/** Options every store accepts; each store's options extend them. */
export interface StoreOptions {
  /**
   * How long runs, their events and sessions (with their items) live after their last write,
   * in milliseconds.
   * @default 3_600_000 (one hour, {@link DEFAULT_TTL_MS})
   */
  ttlMs?: number;
  /**
   * Where the store logs what has no caller to fail (a change listener that threw, a background
   * task's failure); pass the app's logger (`AppOptions.logger`) for one log.
   * @default consoleLogger
   */
  logger?: Logger;
}

/**
 * The `ttlMs` option of a store: {@link DEFAULT_TTL_MS} when it is not given.
 * @param pkg names the store in the error, e.g. `"store-redis"`.
 * @throws RangeError when it is not a positive finite number, so that a store refuses it when
 * it is built.
 * @example
 * constructor({ ttlMs }: MyStoreOptions = {}) {
 *   this.#ttlMs = resolveTtlMs(ttlMs, "store-mine");
 * }
 */
export function resolveTtlMs(ttlMs: number | undefined, pkg: string): number {
  if (ttlMs === undefined) return DEFAULT_TTL_MS;
  if (!(typeof ttlMs === "number" && Number.isFinite(ttlMs) && ttlMs > 0)) {
    throw new RangeError(`[acp] [${pkg}] ttlMs must be a positive number of milliseconds, got ${String(ttlMs)}`);
  }
  return ttlMs;
}

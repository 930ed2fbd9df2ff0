/**
 * What a store package hands to the conformance suite, and how the suite opens and releases
 * stores for one test.
 */
import type { Store } from "../store.ts";

/** A store backend under test. */
export interface ConformanceTarget {
  /** Shown in test names, e.g. "RedisStore". */
  name: string;
  /** A fresh, empty store in its own namespace (random key prefix / random table names). */
  create(options: { ttlMs: number }): Promise<Store>;
  /**
   * A second store over the same data as `store`, as another server instance would open it
   * (a new client connection). Defaults to returning `store` itself (memory store).
   */
  peer?(store: Store): Promise<Store>;
  /** Releases a store made by create/peer: deletes its keys/tables, closes what the target opened. */
  destroy?(store: Store): Promise<void>;
}

/** Test functions are passed in so core does not depend on vitest. Assertions use node:assert/strict. */
export interface TestApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void, timeoutMs?: number): void;
}

/** The two views of one store that a test works with. */
export interface StorePair {
  store: Store;
  /** Another instance over the same data; `store` itself when the target has no `peer`. */
  peer: Store;
}

/** A TTL long enough that nothing expires during a test that does not test expiry. */
export const LONG_TTL_MS = 600_000;

/**
 * Opens a fresh store (and its peer), runs `body`, and releases both even when `body` fails.
 */
export async function withStores(
  target: ConformanceTarget,
  body: (stores: StorePair) => Promise<void>,
  ttlMs: number = LONG_TTL_MS,
): Promise<void> {
  const store = await target.create({ ttlMs });
  let peer = store;
  try {
    if (target.peer) peer = await target.peer(store);
    await body({ store, peer });
  } finally {
    if (peer !== store) await release(target, peer);
    await release(target, store);
  }
}

async function release(target: ConformanceTarget, store: Store): Promise<void> {
  if (target.destroy) await target.destroy(store);
  else await store.close?.();
}

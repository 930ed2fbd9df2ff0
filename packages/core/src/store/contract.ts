/** Which version of the {@link Store} contract this core needs, and the start-up check of a store against it. */
import type { Store } from "../store.ts";

/**
 * The version of the {@link Store} contract this core needs. It goes up by one whenever core
 * starts to rely on something a store did not have to do before, so that a store written for an
 * older contract is refused at start-up instead of quietly losing data; a store declares the
 * version it implements in {@link Store.contractVersion}. Versions:
 * - `1`: session history is written only with {@link Store.updateRun}'s `options.history` (a
 *   run's end and its history land together; a retried update never doubles them), and there is
 *   no `appendHistory` any more. A store without `contractVersion` predates this: with it, core
 *   would lose every session's history.
 * - `2`: {@link Store.listOrphanedRuns} replaces `listActiveRuns` (the store finds the runs whose
 *   owner's lease ran out itself, without the runtime reading every active run);
 *   {@link Store.heartbeat} also keeps the runs its instance owns from expiring;
 *   {@link Store.getSession} lists a session's item ids and size without loading its messages;
 *   a refused value rejects with `StoreRefusedError`, not a plain `StoreError`;
 *   `StoredRun.tenant` is kept. A version-1 store would let live runs expire under their owner.
 * - `3`: durable runs. `StoredRun.epoch` and `StoredRun.durable` are kept;
 *   {@link Store.appendEvents} takes an `epoch` and fences a former owner with it;
 *   {@link Store.recordStep} and {@link Store.readSteps} keep a durable run's steps (fenced by
 *   epoch, expiring with the run, kept alive by heartbeats); {@link Store.listOrphanedRuns} also
 *   lists the runs a draining instance released with owner `""`. A version-2 store would let a
 *   former owner keep writing after a takeover.
 * - `4`: {@link Store.getRunHeads} reads the version, end and last event seq of many runs in one
 *   round trip: each instance checks every run it watches (streams, runs it executes, waits) with
 *   one periodic call instead of one poll per stream and per run. A version-3 store has no such
 *   method.
 * - `5`: {@link Store.createRun} takes `options.history`, written as {@link Store.updateRun}
 *   writes it: a sync run is stored once, at its end, with its log and its session history in
 *   one call. A version-4 store would drop that history.
 */
export const STORE_CONTRACT_VERSION = 5;

/**
 * Refuses a store that implements an older contract than {@link STORE_CONTRACT_VERSION}, or
 * that does not say which one it implements. A newer one is accepted (contracts only add).
 * `new Runtime()`, and so `createApp()`, call it first.
 * @param who names the caller in the error, e.g. `"Runtime"`.
 * @throws TypeError naming the store, the version it implements and the one needed.
 * @example
 * assertStoreContract(new MemoryStore(), "Runtime"); // passes: MemoryStore implements the current contract
 */
export function assertStoreContract(store: Store, who: string): void {
  if (typeof store !== "object" || store === null) {
    throw new TypeError(`[acp] ${who}: a store is required (for example new MemoryStore() from @acp/store-memory)`);
  }
  const version: unknown = store.contractVersion;
  if (typeof version === "number" && version >= STORE_CONTRACT_VERSION) return;
  const name = className(store);
  const declared =
    version === undefined
      ? "declares no contractVersion (it predates versioned store contracts)"
      : `implements store contract version ${String(version)}`;
  throw new TypeError(
    `[acp] ${who}: the store ${name ?? "object"} ${declared}, but this @acp/core needs version ${STORE_CONTRACT_VERSION} or later. ` +
      `Upgrade the package that provides ${name ?? "the store"} (e.g. @acp/store-redis, @acp/store-postgres, @acp/store-memory) to a release made for this @acp/core.`,
  );
}

/** The store's class name (`RedisStore`); `undefined` for an object literal. */
function className(store: object): string | undefined {
  const name: unknown = store.constructor?.name;
  return typeof name === "string" && name !== "" && name !== "Object" ? name : undefined;
}

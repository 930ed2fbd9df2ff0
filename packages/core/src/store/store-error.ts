/** The one error every store throws when its backend fails, and the helpers that make it. */

/** The error every store throws when its backend fails: names the package, keeps the cause. */
export class StoreError extends Error {
  constructor(pkg: string, message: string, options?: { cause?: unknown }) {
    super(`[acp] [${pkg}] ${message}`, options);
    this.name = "StoreError";
  }
}

/**
 * The backend refused a VALUE, not an outage: text PostgreSQL cannot hold (SQLSTATE classes 22,
 * 23, 54: NUL bytes, a value too long, a constraint), a Redis script that failed on its input,
 * a value the memory store cannot copy. Retrying the same write fails the same way, so the
 * runtime never retries it (see {@link isStoreRefusal}); it writes something smaller instead or
 * fails the run.
 */
export class StoreRefusedError extends StoreError {
  constructor(pkg: string, message: string, options?: { cause?: unknown }) {
    super(pkg, message, options);
    this.name = "StoreRefusedError";
  }
}

/**
 * Whether `error` is a {@link StoreRefusedError}: the store refused the value it was given, and
 * the same call would be refused again.
 * @example
 * if (isStoreRefusal(error)) await writeMinimalFailedRecord();
 */
export function isStoreRefusal(error: unknown): error is StoreRefusedError {
  return error instanceof StoreRefusedError;
}

/**
 * `error` as a {@link StoreError} of `pkg`: returned as it is when it is one already (an inner
 * step named the failure first), otherwise wrapped as `[acp] [<pkg>] <what> failed: <reason>`
 * with `error` as its `cause`.
 * @example
 * sql.listen(channel, onMessage).catch((error) => report(wrapStoreError("store-postgres", "listen", error)));
 */
export function wrapStoreError(pkg: string, what: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreError(pkg, `${what} failed: ${reason}`, { cause: error });
}

/**
 * Runs one store operation and rejects with its failure wrapped by {@link wrapStoreError}, so
 * that the runtime sees every backend failure as a store outage.
 * @example
 * getRun(runId: string): Promise<StoredRun | undefined> {
 *   return attemptStore("store-redis", "getRun", () => this.#readRun(runId));
 * }
 */
export async function attemptStore<T>(pkg: string, what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw wrapStoreError(pkg, what, error);
  }
}

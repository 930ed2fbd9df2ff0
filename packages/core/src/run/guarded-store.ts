/**
 * Bounds every store call in time and gives every failure one shape, so that a vanished backend
 * turns into a prompt 503 for the client instead of a hung request or a 500.
 */
import type { Span } from "@opentelemetry/api";
import type { Metrics, StoreTimer } from "../metrics/metrics.ts";
import { type Store, StoreError, StoreRefusedError, type Unsubscribe, wrapStoreError } from "../store.ts";
import { endStoreSpan, startStoreSpan } from "../trace/tracing.ts";

/** A failed store call as the {@link StoreError} the runtime treats as "the store is unavailable". */
function asStoreError(method: string, error: unknown): StoreError {
  return wrapStoreError("core", `store.${method}()`, error);
}

/** The calls behind timeout errors: each resolves when its call ends, which may still land. */
const stillRunning = new WeakMap<StoreError, Promise<void>>();

/**
 * For an error of a call that timed out: resolves once that call has ended (landed or failed),
 * so that reading the store afterwards shows whether it landed. `undefined` for other errors
 * (nothing runs on).
 */
export function whenLanded(error: unknown): Promise<void> | undefined {
  return error instanceof StoreError ? stillRunning.get(error) : undefined;
}

/**
 * Whether the store looks down: its last call to end failed as an outage (not a refusal), and
 * none has succeeded since. Read before work that would only reach the store at its end.
 */
export interface StoreHealth {
  down: boolean;
}

/**
 * Calls in flight and when they are due. One coarse timer serves them all (a timer per store
 * call would cost more than many of the calls): a call is failed between `timeoutMs` and
 * `1.25 × timeoutMs` after it started.
 */
class Deadlines {
  readonly #pending = new Set<{ due: number; expire: () => void }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly health: StoreHealth = { down: false },
  ) {}

  /**
   * `span` (the call's, if traced) ends when the returned promise settles, and `timer` (the
   * call's metrics, started at `startedAt`) records it then: no promise added for either.
   * `late` gets the value of a call that succeeds after it timed out.
   */
  track<T>(
    method: string,
    promise: Promise<T>,
    span?: Span,
    timer?: StoreTimer,
    startedAt = 0,
    late?: (value: T) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = {
        due: Date.now() + this.timeoutMs,
        expire: () => {
          const error = new StoreError("core", `store.${method}() did not answer within ${this.timeoutMs} ms`);
          stillRunning.set(error, promise.then(ignore, ignore));
          this.health.down = true;
          reject(error);
          callEnded(span, timer, startedAt, true, error);
        },
      };
      this.#pending.add(entry);
      this.#timer ??= setInterval(() => this.#sweep(), Math.max(5, Math.floor(this.timeoutMs / 4))).unref();
      promise.then(
        (value) => {
          // Not in #pending any more: it expired, and its span has ended.
          if (!this.#pending.delete(entry)) {
            late?.(value);
            return;
          }
          this.health.down = false;
          resolve(value);
          callEnded(span, timer, startedAt, false);
        },
        (error: unknown) => {
          if (!this.#pending.delete(entry)) return;
          const failure = asStoreError(method, error);
          this.health.down = isStoreOutage(failure);
          reject(failure);
          callEnded(span, timer, startedAt, true, failure);
        },
      );
    });
  }

  #sweep(): void {
    const now = Date.now();
    for (const entry of this.#pending) {
      if (entry.due > now) continue;
      this.#pending.delete(entry);
      entry.expire();
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * A store whose calls reject with a {@link StoreError} after `timeoutMs` or on any backend error.
 * A call that timed out may still complete later: callers that retry writes must check what landed.
 * With `metrics`, each call is timed and each failure counted, under the method's name; with
 * `health`, whether the store looks down is kept up to date (see {@link StoreHealth}).
 */
export function guardStore(store: Store, timeoutMs: number, metrics?: Metrics, health?: StoreHealth): Store {
  const deadlines = new Deadlines(timeoutMs, health);
  const guarded: Partial<Store> = { contractVersion: store.contractVersion };
  for (const method of [
    "createRun",
    "getRun",
    "updateRun",
    "appendEvents",
    "readEvents",
    "getRunHeads",
    "recordStep",
    "readSteps",
    "subscribe",
    "getHistory",
    "getSession",
    "getHistoryItem",
    "heartbeat",
    "isAlive",
    "listOrphanedRuns",
    "ping",
  ] as const) {
    const original = store[method] as (...args: unknown[]) => Promise<unknown>;
    const spanName = `store ${method}`;
    // Without metrics nothing is timed: no clock read per call.
    const timer = metrics?.storeOperation(method);
    // A subscription that comes through after its timeout is ended at once, so none leaks.
    const late = method === "subscribe" ? endLateSubscription : undefined;
    (guarded as Record<string, unknown>)[method] = (...args: unknown[]): Promise<unknown> => {
      const startedAt = timer === undefined ? 0 : performance.now();
      // A child span of the run's (or request's) span, when one records.
      const span = startStoreSpan(spanName, method);
      let call: Promise<unknown>;
      try {
        call = original.apply(store, args);
      } catch (error) {
        const failure = asStoreError(method, error);
        callEnded(span, timer, startedAt, true, failure);
        return Promise.reject(failure);
      }
      return deadlines.track(method, call, span, timer, startedAt, late);
    };
  }
  if (store.close) guarded.close = () => store.close!();
  return guarded as Store;
}

/** Ends a subscription that came through after its call timed out: nobody holds it. */
function endLateSubscription(unsubscribe: unknown): void {
  try {
    (unsubscribe as Unsubscribe)().catch(ignore);
  } catch {
    // Nothing more to do for a subscription nobody holds.
  }
}

/** A store call ended: its metrics record it and its span ends (each only when there is one). */
function callEnded(
  span: Span | undefined,
  timer: StoreTimer | undefined,
  startedAt: number,
  failed: boolean,
  error?: unknown,
): void {
  timer?.(startedAt, failed);
  if (span !== undefined) endStoreSpan(span, failed, error);
}

function ignore(): void {}

/**
 * Waits up to `ms` for a timed-out call (see {@link whenLanded}) to end, so that reading the
 * store afterwards shows whether it landed; throws a store outage (for the caller to retry) if
 * it is still running then.
 */
export async function waitLanded(pending: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    pending.then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  if (!ended) throw new StoreError("core", `${what} has not landed yet`);
}

/**
 * The store is unavailable (as opposed to a run that ended, a conflict, or a value the backend
 * refused: a {@link StoreRefusedError} would be refused again, so it is never retried).
 */
export function isStoreOutage(error: unknown): boolean {
  return error instanceof StoreError && !(error instanceof StoreRefusedError);
}

/**
 * Calls `fn` until it succeeds, while its failures are store outages, waiting a little longer
 * after each (100 ms doubling to 2 s) until `deadline` (epoch ms) or `signal` stops it.
 * `onFailure` sees every failure, retried or not. A first call that succeeds costs one promise
 * besides its own (this runs on every write of a run).
 */
export function retryOutage<T>(
  fn: () => Promise<T>,
  deadline: number,
  signal?: { readonly aborted: boolean },
  onFailure?: (error: unknown) => void,
): Promise<T> {
  let first: Promise<T>;
  try {
    first = fn();
  } catch (error) {
    return retryOutageAfter(error, fn, deadline, signal, onFailure);
  }
  return first.catch((error: unknown) => retryOutageAfter(error, fn, deadline, signal, onFailure));
}

/**
 * The retries of {@link retryOutage} after its first call failed with `first`: for a caller that
 * made the first call itself (and handles its success in its own `then`).
 */
export async function retryOutageAfter<T>(
  first: unknown,
  fn: () => Promise<T>,
  deadline: number,
  signal?: { readonly aborted: boolean },
  onFailure?: (error: unknown) => void,
): Promise<T> {
  let error = first;
  let delay = 100;
  for (;;) {
    onFailure?.(error);
    if (!isStoreOutage(error) || Date.now() + delay > deadline || signal?.aborted) throw error;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 2000);
    try {
      return await fn();
    } catch (failure) {
      error = failure;
    }
  }
}

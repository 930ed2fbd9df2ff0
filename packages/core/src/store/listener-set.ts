/** The registry of change listeners that every store keeps, with one policy for a listener that throws. */
import { consoleLogger, type Logger } from "../logger.ts";
import type { ChangeKind, ChangeListener } from "../store.ts";

/** One call of `add`: an object of its own, so that one function added twice is two subscriptions. */
interface Subscription {
  readonly listener: ChangeListener;
}

/**
 * Change listeners by key (a run id, or a channel name). A listener must not throw; one that
 * does is logged (once per throw, at level error) and never stops the others of the same
 * call nor reaches the code that delivered the change (a timer, a socket's data handler).
 * @example
 * const listeners = new ListenerSet("store-memory");
 * const remove = listeners.add(runId, listener);
 * listeners.notify(runId, "record", 2);
 * remove();
 */
export class ListenerSet {
  readonly #pkg: string;
  readonly #logger: Logger;
  readonly #byKey = new Map<string, Set<Subscription>>();

  /**
   * @param pkg names the store in the log line of a listener that throws, e.g. `"store-redis"`.
   * @param logger where that line goes (the store's `StoreOptions.logger`).
   */
  constructor(pkg: string, logger: Logger = consoleLogger) {
    this.#pkg = pkg;
    this.#logger = logger;
  }

  /**
   * Adds `listener` under `key`.
   * @returns a function that removes it (idempotent): no call reaches it after that, even from
   * a notification in progress.
   */
  add(key: string, listener: ChangeListener): () => void {
    const subscription: Subscription = { listener };
    let subscriptions = this.#byKey.get(key);
    if (!subscriptions) {
      subscriptions = new Set();
      this.#byKey.set(key, subscriptions);
    }
    subscriptions.add(subscription);
    const byKey = this.#byKey;
    return function remove(): void {
      const current = byKey.get(key);
      if (!current?.delete(subscription)) return;
      if (current.size === 0) byKey.delete(key);
    };
  }

  /** Whether any listener is registered under `key`. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** The keys that have listeners. */
  keys(): string[] {
    return [...this.#byKey.keys()];
  }

  /**
   * Calls every listener of `key` with the change. Listeners added during the call are not
   * called; those removed during it are skipped.
   */
  notify(key: string, change?: ChangeKind, version?: number): void {
    const subscriptions = this.#byKey.get(key);
    if (!subscriptions) return;
    for (const subscription of [...subscriptions]) {
      if (!subscriptions.has(subscription)) continue;
      try {
        subscription.listener(change, version);
      } catch (error) {
        this.#logger.error({ key, err: error }, `[${this.#pkg}] a change listener threw (listeners must not throw)`);
      }
    }
  }

  /** Wakes every listener with a change of unknown kind, as after notifications were lost. */
  notifyAll(): void {
    for (const key of this.keys()) this.notify(key, undefined);
  }

  /** Removes every listener. */
  clear(): void {
    this.#byKey.clear();
  }
}

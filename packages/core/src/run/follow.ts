/**
 * Waits on a run, whichever instance writes it: subscribe first, then read, then read again on
 * every wake-up. Notifications only wake the reader, so a lost one delays it (until the
 * instance's periodic check, or the poll of a reader on its own) but never loses a change.
 * (The events of a run are followed through {@link RunFeeds}, run-feed.ts.)
 */
import type { ChangeKind, Store, StoredRun } from "../store.ts";
import type { RunWatch } from "./run-watch.ts";

/**
 * How long a reader waits without a notification before it reads anyway. Notifications are
 * reliable (stores wake every reader after reconnecting), so this is only a safety net, and
 * it is what idle readers cost the store: keep it long.
 */
const IDLE_POLL_MS = 10_000;

/** Resolves on the next wake-up, after `timeoutMs`, or when `signal` aborts. */
class Waker {
  #dirty = true;
  #resolve: (() => void) | undefined;

  wake = (): void => {
    this.#dirty = true;
    this.#resolve?.();
  };

  /** Consumes a pending wake-up; true when there was one. */
  take(): boolean {
    const was = this.#dirty;
    this.#dirty = false;
    return was;
  }

  /** Waits for a wake-up, at most `timeoutMs` (no limit when `undefined`). */
  wait(timeoutMs: number | undefined, signal?: AbortSignal): Promise<void> {
    if (this.#dirty || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#resolve = undefined;
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done, { once: true });
      this.#resolve = done;
    });
  }
}

/**
 * Resolves with the run's record once `done(record)` holds, re-reading it on every record change.
 * Resolves `undefined` when the run disappears or `signal` aborts. With `watch`, the instance's
 * periodic check wakes it when the record's version moved (no timer of its own); without, it
 * re-reads every `pollMs`.
 */
export async function waitForRecord(
  store: Store,
  runId: string,
  done: (record: StoredRun) => boolean,
  options: { signal?: AbortSignal; pollMs?: number; watch?: RunWatch } = {},
): Promise<StoredRun | undefined> {
  const { signal, pollMs = IDLE_POLL_MS, watch } = options;
  const waker = new Waker();
  const onChange = (change?: ChangeKind): void => {
    if (change !== "events") waker.wake();
  };
  /** The version last read: the periodic check wakes the wait only for a newer one. */
  let known = 0;
  const unsubscribe = await store.subscribe(runId, onChange);
  const stopWatching = watch?.add(runId, {
    check: (head) => {
      if (head === undefined || head.version > known) waker.wake();
    },
  });
  try {
    while (!signal?.aborted) {
      waker.take();
      const record = await store.getRun(runId);
      if (record === undefined || done(record)) return record;
      known = record.version;
      await waker.wait(watch === undefined ? pollMs : undefined, signal);
    }
    return undefined;
  } finally {
    stopWatching?.();
    await unsubscribe();
  }
}

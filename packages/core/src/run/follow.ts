/**
 * Follows a run's event log from any position, live, whichever instance writes it: subscribe
 * first, then read, then read again on every wake-up. Notifications only wake the reader, so a
 * lost one delays it (until the safety poll) but never loses or repeats an event.
 */
import { isTerminal } from "../models.ts";
import type { ChangeKind, Store, StoredEvent, StoredRun } from "../store.ts";
import type { RunWatch } from "./run-watch.ts";

const PAGE = 500;

/**
 * How long a reader waits without a notification before it reads anyway. Notifications are
 * reliable (stores wake every reader after reconnecting), so this is only a safety net, and
 * it is what idle readers cost the store: keep it long.
 */
const IDLE_POLL_MS = 10_000;

/** Resolves on the next wake-up, after `timeoutMs`, or when `signal` aborts. */
class Waker {
  #dirty = true;
  #recordChanged = false;
  #resolve: (() => void) | undefined;

  wake = (change?: ChangeKind): void => {
    this.#dirty = true;
    if (change !== "events") this.#recordChanged = true;
    this.#resolve?.();
  };

  /** Consumes a pending wake-up; true when there was one. */
  take(): boolean {
    const was = this.#dirty;
    this.#dirty = false;
    return was;
  }

  /** Consumes the note that the run's record changed since the last call. */
  takeRecordChange(): boolean {
    const was = this.#recordChanged;
    this.#recordChanged = false;
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

export interface FollowOptions {
  /** Start after this seq: 0 reads from the first event. */
  afterSeq: number;
  signal?: AbortSignal;
  /** Read again after this long without a notification (a lost notification costs at most this). @default 10_000 */
  pollMs?: number;
}

/**
 * Yields the run's events with `seq > afterSeq` in order, then waits for more: the caller stops
 * iterating when it has seen what it wanted (a terminal event, say). Ends by itself when
 * `signal` aborts, the run disappears from the store, or the run has ended and nothing is left.
 */
export async function* followEvents(store: Store, runId: string, options: FollowOptions): AsyncGenerator<StoredEvent> {
  const { signal, pollMs = IDLE_POLL_MS } = options;
  let afterSeq = options.afterSeq;
  const waker = new Waker();
  const unsubscribe = await store.subscribe(runId, waker.wake);
  try {
    while (!signal?.aborted) {
      const woken = waker.take();
      const recordChanged = waker.takeRecordChange();
      const batch = await store.readEvents(runId, afterSeq, PAGE);
      for (const stored of batch) {
        afterSeq = stored.seq;
        yield stored;
      }
      if (batch.length === PAGE) continue;
      if (batch.length === 0 && (!woken || recordChanged)) {
        // Nothing new since the last poll: a run that is gone, or ended (its terminal event is
        // always its last), has nothing more to give, even to a reader that started past the end.
        const record = await store.getRun(runId);
        if (record === undefined) return;
        if (isTerminal(record.run.status)) {
          // The run may have ended between our read and this check: its last events come first.
          for (const stored of await store.readEvents(runId, afterSeq)) yield stored;
          return;
        }
      }
      await waker.wait(pollMs, signal);
    }
  } finally {
    await unsubscribe();
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

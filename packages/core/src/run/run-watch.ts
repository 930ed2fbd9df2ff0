/**
 * The safety net behind change notifications, once per instance: every run this instance
 * watches (runs it executes, runs its streams follow, runs a request waits on) is checked with
 * one batched store call per period ({@link Store.getRunHeads}), and only the watchers of runs
 * that moved do any further reading. Idle watchers cost the store nothing of their own.
 */
import { consoleLogger, type Logger } from "../logger.ts";
import type { RunHead, Store } from "../store.ts";

/**
 * How often the instance checks the runs it watches. A lost notification (a pub/sub reconnect,
 * a NOTIFY lost after its commit) delays a cancel, a resume or a stream's next event by at most
 * about this: one `getRunHeads` call per period per {@link HEADS_BATCH} runs watched.
 */
export const WATCH_CHECK_MS = 2_000;

/** Most runs asked for in one `getRunHeads` call; more are asked for in several calls. */
export const HEADS_BATCH = 500;

/**
 * Something that watches a run. `check` is called at each periodic check that started after it
 * was added, with the run's head (`undefined`: the store does not know the run, or no longer).
 * It compares the head with what it knows and reads the store only if the run moved. Must not
 * throw (one that does is logged).
 */
export interface RunWatcher {
  check(head: RunHead | undefined): void;
}

/**
 * The runs an instance watches and its one periodic check of them. The timer runs only while
 * something is watched, and never keeps the process alive.
 * @example
 * const watch = new RunWatch(store);
 * const stop = watch.add(runId, { check: (head) => { if (head === undefined || head.version > known) reread(); } });
 * stop();
 */
export class RunWatch {
  readonly #store: Store;
  readonly #periodMs: number;
  readonly #logger: Logger;
  readonly #byRun = new Map<string, Set<RunWatcher>>();
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  /** Whether the last check failed: a failing store is logged once, not every period. */
  #failing = false;

  /**
   * @param store the (guarded) store the checks read.
   * @param periodMs see {@link WATCH_CHECK_MS}.
   */
  constructor(store: Store, periodMs: number = WATCH_CHECK_MS, logger: Logger = consoleLogger) {
    this.#store = store;
    this.#periodMs = periodMs;
    this.#logger = logger;
  }

  /** The period of the checks, in milliseconds. */
  get periodMs(): number {
    return this.#periodMs;
  }

  /** How many runs are watched now. */
  get size(): number {
    return this.#byRun.size;
  }

  /** Watches `runId` with `watcher` until the returned function is called (idempotent). */
  add(runId: string, watcher: RunWatcher): () => void {
    let watchers = this.#byRun.get(runId);
    if (watchers === undefined) {
      watchers = new Set();
      this.#byRun.set(runId, watchers);
    }
    watchers.add(watcher);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.checkNow(), this.#periodMs);
      this.#timer.unref();
    }
    const byRun = this.#byRun;
    const removed = (): void => {
      const current = byRun.get(runId);
      if (!current?.delete(watcher)) return;
      if (current.size > 0) return;
      byRun.delete(runId);
      if (byRun.size === 0) this.stop();
    };
    return removed;
  }

  /**
   * Checks every watched run now (the timer calls it each period); a call while a check is in
   * progress shares it. Never rejects: a failed check is logged, the next period tries again.
   */
  checkNow(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  /** Stops the timer; a later {@link add} starts it again. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #check(): Promise<void> {
    if (this.#byRun.size === 0) return;
    // Who is watched as the check starts: a watcher added later is not told about heads read
    // before it came (a run created meanwhile would seem unknown).
    const snapshot = [...this.#byRun].map(([runId, watchers]) => [runId, [...watchers]] as const);
    for (let start = 0; start < snapshot.length; start += HEADS_BATCH) {
      const batch = snapshot.slice(start, start + HEADS_BATCH);
      let heads: Map<string, RunHead>;
      try {
        heads = await this.#store.getRunHeads(batch.map(([runId]) => runId));
      } catch (error) {
        if (!this.#failing)
          this.#logger.warn(
            { reason: (error as Error).message },
            "the periodic check of watched runs failed (logged once until it recovers)",
          );
        this.#failing = true;
        return;
      }
      this.#failing = false;
      for (const [runId, watchers] of batch) {
        const current = this.#byRun.get(runId);
        if (current === undefined) continue;
        const head = heads.get(runId);
        for (const watcher of watchers) {
          if (!current.has(watcher)) continue;
          try {
            watcher.check(head);
          } catch (error) {
            this.#logger.error({ run_id: runId, err: error }, "a run watcher threw (watchers must not throw)");
          }
        }
      }
    }
  }
}

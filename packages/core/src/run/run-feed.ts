/**
 * Shared readers of runs' event logs, one per run per instance: however many streams of an
 * instance follow a run, the store sees one subscription and one `readEvents` per change, and
 * the events are handed to every local follower from memory. Each follower keeps its own
 * position: one that starts behind the shared reader (an older `Last-Event-ID`), or that falls
 * further behind than the feed keeps events, reads on its own until it catches up. A lost
 * notification is caught up by the instance's periodic check ({@link RunWatch}). A shared read
 * that fails for a store outage is retried while the followers wait (one failed read would
 * otherwise end every stream of the run at once, and each would come back to read on its own).
 */
import { isTerminal } from "../models.ts";
import type { RunHead, Store, StoredEvent, Unsubscribe } from "../store.ts";
import { retryOutage } from "./guarded-store.ts";
import type { RunWatch, RunWatcher } from "./run-watch.ts";

/** Most events a follower's own read asks for. */
const PAGE = 500;

/**
 * Most events a feed keeps for its followers. A follower further behind reads on its own: a
 * slow client neither holds the others back nor makes the feed grow.
 */
export const FEED_BUFFER = 256;

/** Options of {@link RunFeeds}. */
export interface RunFeedsOptions {
  /**
   * How long a feed retries a shared read that fails for a store outage (100 ms doubling to 2 s
   * between tries) before its followers' `next()` rejects; 0 fails them at the first failure.
   * A refused read (`StoreRefusedError`) is never retried. The runtime's `outageMs` is the
   * budget meant here.
   * @default the watch's period (until its next check)
   */
  outageMs?: number;
}

/**
 * An event as a feed hands it out; `text` and `frame` are for a stream to keep its SSE frame in
 * (as text, and encoded), made once for all followers; `burst` the frames of the events from
 * seq `from` up to this one, sent as one chunk, for the streams that send the same burst.
 */
export interface FedEvent extends StoredEvent {
  text?: string;
  frame?: Uint8Array;
  burst?: { from: number; frames: Uint8Array };
}

function endsRun(event: StoredEvent["event"]): boolean {
  return event.type === "run.completed" || event.type === "run.failed" || event.type === "run.cancelled";
}

/**
 * The feeds of one instance, by run.
 * @example
 * const follower = feeds.follow(runId, 0);
 * for (let next = await follower.next(); next !== undefined; next = await follower.next()) send(next);
 * follower.close();
 */
export class RunFeeds {
  readonly #store: Store;
  readonly #watch: RunWatch;
  readonly #outageMs: number;
  readonly #feeds = new Map<string, RunFeed>();

  constructor(store: Store, watch: RunWatch, { outageMs = watch.periodMs }: RunFeedsOptions = {}) {
    this.#store = store;
    this.#watch = watch;
    this.#outageMs = outageMs;
  }

  /** How many runs have a feed now. */
  get size(): number {
    return this.#feeds.size;
  }

  /**
   * A follower of the run's events with `seq > afterSeq`. It ends (its `next()` resolves
   * `undefined`) once it has handed out the run's last event, when the run is unknown or expired,
   * or when it is closed; the caller closes it when it stops earlier.
   */
  follow(runId: string, afterSeq: number): Follower {
    const known = this.#feeds.get(runId);
    if (known !== undefined) return known.join(afterSeq, true);
    const feed = new RunFeed(this.#store, runId, afterSeq, this.#watch, this.#outageMs, this.#feeds);
    this.#feeds.set(runId, feed);
    // The new feed reads once subscribed: no need to ask it to.
    return feed.join(afterSeq, false);
  }
}

/** What {@link Follower} does when it has no event to hand out at once. */
const WAIT = 0;
const READ = 1;

/** What {@link Follower.poll} answers when there is no event yet: the sink is woken once there may be. */
export const WAITING = 2;

/** Who {@link Follower.poll} wakes, instead of settling a promise. */
export interface FollowerSink {
  /** The follower may have its next event now (poll again), or, with `error`, its feed's read failed. */
  woken(error?: unknown): void;
}

/**
 * One follower of a run: its position, and the wait for its next event. Small on purpose (an
 * idle stream holds one of these, and through {@link poll} no pending promise): no async
 * function, no closure of its own.
 */
export class Follower {
  /** The seq of the last event handed out. */
  position: number;
  readonly #feed: RunFeed;
  /** Events this follower read itself while behind the feed; index of the next one. */
  #own: StoredEvent[] | undefined;
  #ownAt = 0;
  /** Who waits for the feed to move (see {@link poll}). */
  #sink: FollowerSink | undefined;
  /** Nothing more to hand out: closed, or the run's log is gone. */
  #done = false;
  #closed = false;

  constructor(feed: RunFeed, position: number) {
    this.#feed = feed;
    this.position = position;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The next event, once there is one; `undefined` when the follower is done. {@link poll} with
   * a promise around it, for a reader that awaits (an idle stream polls instead).
   * @throws StoreError when the feed's subscription or a read fails.
   */
  next(): Promise<FedEvent | undefined> {
    return new Promise((resolve, reject) => {
      const sink: FollowerSink = {
        woken: (error) => {
          if (error !== undefined) reject(error);
          else settleOrWait();
        },
      };
      const settleOrWait = (): void => {
        const event = this.poll(sink);
        if (event !== WAITING) resolve(event);
      };
      settleOrWait();
    });
  }

  /**
   * {@link next} without a promise: the next event if it is at hand; `undefined` when the
   * follower is done; else {@link WAITING}, and `sink.woken()` comes once there may be one (then
   * poll again). An idle stream waits this way: it holds no pending promise, no closure.
   */
  poll(sink: FollowerSink): FedEvent | undefined | typeof WAITING {
    const feed = this.#feed;
    if (feed.subscribed) {
      const step = this.#step();
      if (step !== WAIT && step !== READ) return step;
      if (step === WAIT) {
        feed.demand();
        this.#sink = sink;
        return WAITING;
      }
    }
    (feed.subscribed ? this.#readOwn() : feed.ready).then(
      () => sink.woken(),
      (error: unknown) => sink.woken(error ?? new Error("the feed's read failed")),
    );
    return WAITING;
  }

  /**
   * The next event if it is at hand now (the rest of a batch the feed or this follower's own
   * read holds), without waiting or reading; `undefined` otherwise, or when done. A stream takes
   * these after a `next()` to send a burst as one write.
   */
  take(): FedEvent | undefined {
    const step = this.#step();
    return step === WAIT || step === READ ? undefined : step;
  }

  /** The feed moved (or, with `error`, its read failed): wakes the waiting poll, if any. */
  wake(error?: unknown): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    this.#sink = undefined;
    sink.woken(error);
  }

  /** The next event if it is at hand; `undefined` when done; else what to do first. */
  #step(): FedEvent | undefined | typeof WAIT | typeof READ {
    if (this.#done) return undefined;
    const own = this.#own;
    if (own !== undefined) {
      const event = own[this.#ownAt++];
      if (event !== undefined && event.seq === this.position + 1) {
        this.position = event.seq;
        return event;
      }
      this.#own = undefined;
    }
    const feed = this.#feed;
    // Behind what the feed keeps: read on our own up to where it starts, then join it. Just
    // behind a feed that keeps nothing (its only follower took it all), have it read from here
    // for all (less than a page: the followers ahead do not wait for it to page through the log).
    if (this.position < feed.base)
      return feed.base - this.position < FEED_BUFFER && feed.rewind(this.position) ? WAIT : READ;
    const event = feed.at(this.position + 1);
    if (event !== undefined) {
      this.position = event.seq;
      if (event.seq === feed.lastSeq) feed.caughtUp();
      return event;
    }
    if (feed.gone || (feed.endSeq !== undefined && this.position >= feed.endSeq)) return undefined;
    return WAIT;
  }

  async #readOwn(): Promise<void> {
    const feed = this.#feed;
    const batch = await feed.store.readEvents(feed.runId, this.position, Math.min(PAGE, feed.base - this.position));
    if (batch.length > 0) {
      this.#own = batch;
      this.#ownAt = 0;
      return;
    }
    // The log ends before where the feed starts (it started past the end), or the run expired.
    if (!feed.rewind(this.position)) this.#done = true;
  }

  /**
   * Stops following; a pending `next()` resolves `undefined`. Idempotent.
   * @returns resolves once the feed has unsubscribed, when this was its last follower.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#done = true;
    this.wake();
    return this.#feed.leave(this);
  }
}

/** The shared reader of one run on one instance. */
class RunFeed implements RunWatcher {
  readonly store: Store;
  readonly runId: string;
  /** Resolves once the subscription is in effect; rejects when it failed. */
  readonly ready: Promise<void>;
  /** Whether `ready` has resolved (a follower then need not wait for it). */
  subscribed = false;
  /** The seq of the event before the first one kept. */
  base: number;
  /** Events read and kept: seqs `base + 1` … `lastSeq`. */
  #events: FedEvent[] = [];
  /** The seq of the run's last event, once it is known to have ended. */
  endSeq: number | undefined;
  /** The store does not know the run (any more). */
  gone = false;
  readonly #followers = new Set<Follower>();
  #closed = false;
  readonly #outageMs: number;
  readonly #unsubscribe: Promise<Unsubscribe | undefined>;
  readonly #stopWatching: () => void;
  /** The instance's feeds, which this one leaves when it closes. */
  readonly #feeds: Map<string, RunFeed>;
  /** A read (with its retries) is going on. */
  #reading = false;
  /** Something changed while a read was going on: read again after it. */
  #dirty = false;
  /** The record may have changed: an empty read looks at the record (has the run ended, or gone?). */
  #recordChanged = true;
  /**
   * The last read was a full page: the next one is made when a follower has taken it all (a
   * change notification still reads at once, for followers that keep up).
   */
  #more = false;
  /** The followers the wake pass going on has yet to wake ({@link #wake}). */
  #pass: SetIterator<Follower> | undefined;
  /** The feed moved during the pass: another pass follows it. */
  #passAgain = false;

  constructor(
    store: Store,
    runId: string,
    afterSeq: number,
    watch: RunWatch,
    outageMs: number,
    feeds: Map<string, RunFeed>,
  ) {
    this.store = store;
    this.runId = runId;
    this.base = afterSeq;
    this.#outageMs = outageMs;
    this.#feeds = feeds;
    const subscribed = store.subscribe(runId, (change) => {
      if (change !== "events") this.#recordChanged = true;
      this.#read();
    });
    this.ready = subscribed.then(
      () => {
        this.subscribed = true;
        this.#read();
      },
      (error: unknown) => {
        void this.#close();
        throw error;
      },
    );
    // Nobody may be waiting on `ready` yet: its failure reaches each follower's next().
    this.ready.catch(() => {});
    this.#unsubscribe = subscribed.catch(() => undefined);
    this.#stopWatching = watch.add(runId, this);
  }

  /** Whether the feed has closed: read by {@link retryOutage}, whose retries then stop. */
  get aborted(): boolean {
    return this.#closed;
  }

  get lastSeq(): number {
    return this.base + this.#events.length;
  }

  /** The kept event with this seq, if it is kept. */
  at(seq: number): FedEvent | undefined {
    return this.#events[seq - this.base - 1];
  }

  /** A new follower from `afterSeq`; with `look`, the feed reads the log again (see below). */
  join(afterSeq: number, look: boolean): Follower {
    const follower = new Follower(this, afterSeq);
    this.#followers.add(follower);
    // A follower ahead of what was read may be waiting for events whose notification came
    // before it joined: look now (reads in flight coalesce, so many joins cost one or two reads).
    if (look && afterSeq >= this.lastSeq && this.endSeq === undefined)
      this.ready.then(() => {
        if (follower.position >= this.lastSeq) this.#read();
      }, ignore);
    return follower;
  }

  /**
   * Moves the start of a feed that holds no event back to `seq`, when a follower needs what
   * comes after `seq`: the feed started past the end of the log (its first follower came with a
   * seq the log does not have yet), or dropped what its only follower had taken
   * ({@link caughtUp}) and more join from before. Whether it did.
   */
  rewind(seq: number): boolean {
    if (this.#closed || this.gone || this.#events.length > 0 || seq >= this.base) return false;
    this.base = seq;
    this.endSeq = undefined;
    this.#recordChanged = true;
    this.#read();
    return true;
  }

  /**
   * A follower has taken everything the feed holds: when the last read was a full page, read the
   * next one now (a log read page by page as its followers take it, not ahead of them).
   */
  demand(): void {
    if (!this.#more) return;
    this.#more = false;
    this.#read();
  }

  /**
   * A follower has taken the last kept event. When it is the only one, the events are dropped
   * now rather than at the next check: an idle stream keeps no copy of its run's log (nor its
   * frames), and no follower that comes later needs them (one behind reads on its own).
   */
  caughtUp(): void {
    if (this.#followers.size !== 1) return;
    this.base = this.lastSeq;
    this.#events = [];
  }

  /** Resolves once the feed has unsubscribed, when `follower` was its last. */
  leave(follower: Follower): Promise<void> {
    if (this.#followers.delete(follower) && this.#followers.size === 0) return this.#close();
    return Promise.resolve();
  }

  /**
   * The instance's periodic check: read when the run moved past what was read, or ended, or is
   * gone; but not while the feed is behind the log on purpose (see {@link demand}): the read a
   * follower asks for then looks at the record too.
   */
  check(head: RunHead | undefined): void {
    this.#trim();
    if (head === undefined || (head.ended && this.endSeq === undefined)) this.#recordChanged = true;
    else if (head.lastSeq <= this.lastSeq) return;
    if (!this.#more) this.#read();
  }

  /** Leaves the instance's feeds, its check and the subscription: when the last follower left, or the subscription failed. */
  #close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#feeds.get(this.runId) === this) this.#feeds.delete(this.runId);
    this.#stopWatching();
    this.#events = [];
    return this.#unsubscribe.then((unsubscribe) => unsubscribe?.()).catch(ignore);
  }

  /** Drops the kept events every follower has passed (they are kept for followers still behind). */
  #trim(): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const follower of this.#followers) lowest = Math.min(lowest, follower.position);
    const passed = Math.min(lowest, this.lastSeq) - this.base;
    if (passed <= 0) return;
    this.#events.splice(0, passed);
    this.base += passed;
  }

  #append(batch: StoredEvent[]): void {
    if (batch.length === 0) return;
    // Room first from what every follower has taken, so that the cap below drops only what a
    // follower still needs when one is that far behind.
    this.#trim();
    for (const stored of batch) {
      // Reads never overlap and always start at lastSeq: anything else is dropped, never repeated.
      if (stored.seq !== this.lastSeq + 1) continue;
      this.#events.push(stored);
      if (endsRun(stored.event)) this.endSeq = stored.seq;
    }
    const over = this.#events.length - FEED_BUFFER;
    if (over > 0) {
      this.#events.splice(0, over);
      this.base += over;
    }
  }

  /**
   * Reads what is new, one read at a time; a wake-up during a read makes one more read after it.
   * A read that fails for a store outage is tried again (while its followers wait) until the
   * feed's outage budget runs out; then, or at once for any other failure, every waiting
   * follower's `next()` rejects.
   */
  #read(): void {
    if (this.#reading) {
      this.#dirty = true;
      return;
    }
    if (this.#closed) return;
    this.#reading = true;
    void retryOutage(
      () => this.#readAll(),
      Date.now() + this.#outageMs,
      // The signal that stops the retries once the feed has closed: the feed itself.
      this,
      // What a failed try read before it failed is handed out meanwhile.
      () => this.#wake(undefined),
    ).then(
      () => this.#wake(undefined),
      (error: unknown) => {
        this.#reading = false;
        this.#wake(error);
      },
    );
  }

  /**
   * One try of {@link #read}. It ends the read when it succeeds, right after its last look at
   * `#dirty` (a wake-up a microtask later would otherwise find the read still going and be lost);
   * a failed try leaves it going, for the next try.
   */
  async #readAll(): Promise<void> {
    let failed = false;
    try {
      do {
        this.#dirty = false;
        if (this.#closed || this.endSeq !== undefined || this.gone) return;
        const recordChanged = this.#recordChanged;
        this.#recordChanged = false;
        // At most what the feed keeps: reading more would only drop the start of it again.
        const batch = await this.store.readEvents(this.runId, this.lastSeq, FEED_BUFFER);
        this.#append(batch);
        // A full page: there is likely more, read once a follower has taken this one.
        this.#more = batch.length === FEED_BUFFER;
        if (this.#more) return;
        if (batch.length > 0 || !recordChanged) continue;
        // Nothing new after a change of the record: a run that is gone, or ended (its terminal
        // event is always its last), has nothing more to give.
        const record = await this.store.getRun(this.runId);
        if (record === undefined) this.gone = true;
        else if (isTerminal(record.run.status)) {
          // The run may have ended between our read and this check: its last events come first.
          this.#append(await this.store.readEvents(this.runId, this.lastSeq));
          this.endSeq = this.lastSeq;
        }
      } while (this.#dirty);
    } catch (error) {
      // The next try (or change, or check) reads again; the record is looked at then too.
      failed = true;
      this.#recordChanged = true;
      throw error;
    } finally {
      if (!failed) this.#reading = false;
    }
  }

  /**
   * Wakes the followers waiting for the feed to move; with `error`, their `next()` rejects. Many
   * followers are woken {@link WAKE_SLICE} at a time, a turn of the event loop between slices:
   * each woken stream writes to its socket, and a thousand writes in one go would hold off the
   * read of what comes next (whose events the followers still to wake then take in the same
   * write). One pass at a time: events read during a pass go to the followers it has yet to wake
   * with what they were woken for, in the same write; once it ends, one more pass wakes the
   * followers it woke before them. (Passes that overlapped wrote to the first followers of the set
   * once per read while the last ones waited for all of them: more writes, later.)
   */
  #wake(error: unknown): void {
    if (error !== undefined || this.#followers.size <= WAKE_SLICE) {
      for (const follower of this.#followers) follower.wake(error);
      return;
    }
    if (this.#pass !== undefined) {
      this.#passAgain = true;
      return;
    }
    this.#pass = this.#followers.values();
    this.#wakeSlice();
  }

  /** Wakes the next {@link WAKE_SLICE} followers of the pass, and the rest in a later turn. */
  #wakeSlice(): void {
    const pass = this.#pass;
    if (pass === undefined) return;
    for (let woken = 0; woken < WAKE_SLICE; woken++) {
      const next = pass.next();
      if (next.done) {
        if (!this.#passAgain || this.#closed) {
          this.#pass = undefined;
          return;
        }
        this.#passAgain = false;
        this.#pass = this.#followers.values();
        break;
      }
      next.value.wake();
    }
    setImmediate(RunFeed.#continuePass, this);
  }

  static #continuePass(feed: RunFeed): void {
    feed.#wakeSlice();
  }
}

/** Followers of one feed woken in one turn of the event loop (see RunFeed's `#wake`). */
const WAKE_SLICE = 32;

function ignore(): void {}

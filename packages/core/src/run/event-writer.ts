/**
 * Appends a run's events in order with group commit: while one append is in flight, later events
 * wait in a buffer and go to the store together in the next append. A fast agent therefore costs
 * one store round trip per batch, not per token, and the order is kept.
 *
 * Through a store outage it retries for a while. An append that failed may still have landed (a
 * timeout after the write), or may land later (it timed out waiting in a client library's queue),
 * so before writing a batch again it waits for that append to land (or fail for good), then reads
 * the log's tail: no event is lost and none is written twice. This relies on the owner being the
 * only writer of a running run's log, which the runtime guarantees (others only write while it
 * awaits, or once it is gone).
 */
import type { Event } from "../models.ts";
import type { Store } from "../store.ts";
import { retryOutageAfter, waitLanded, whenLanded } from "./guarded-store.ts";

/** How long one attempt waits for an earlier append that timed out to land. */
const LANDED_WAIT_MS = 1000;

/** Thrown when the store refuses an append because the run ended elsewhere (or expired). */
export class RunGoneError extends Error {
  constructor(runId: string) {
    super(`run ${runId} ended or expired while its agent was writing`);
    this.name = "RunGoneError";
  }
}

export class EventWriter {
  #buffer: Event[] = [];
  #inFlight: Promise<void> | undefined;
  #failure: unknown;
  #lastSeq: number;
  /** An append is scheduled. */
  #scheduled = false;
  /**
   * Appends wait for the end of the event-loop turn instead of the next microtask, so that a run
   * nobody can see yet writes what one turn produced in one call (or in its next transition's).
   */
  untilTurnEnds = false;
  /** The last append failed in a way that may have stored it anyway. */
  #uncertain = false;
  /** That append timed out and may still land (a client library's queue): resolves when it has landed or failed. */
  #pending: Promise<void> | undefined;
  /**
   * The ownership epoch of a durable run: appends are fenced by it (the store refuses them once
   * another instance took the run over). `undefined` for other runs: appends are not fenced.
   */
  epoch: number | undefined = undefined;
  /** Called when an append finds the run gone (ended, expired, or taken over): the executor stops at once. */
  onGone: (() => void) | undefined = undefined;
  /** Awaited before each append while set: the executor creates a run not stored yet. Its failure is the append's. */
  prepare: (() => Promise<void>) | undefined = undefined;

  constructor(
    private readonly store: Store,
    private readonly runId: string,
    /** The seq of the last event in the log when the writer starts. */
    lastSeq: number,
    /** How long to retry through a store outage before failing. */
    private readonly outageMs: number,
    private readonly maxBatch = 256,
  ) {
    this.#lastSeq = lastSeq;
  }

  /** The seq of the last event of the log, as far as this writer knows. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Tells the writer that others appended to the log (a transition, a resume): its new length. */
  set lastSeq(seq: number) {
    this.#lastSeq = seq;
  }

  /** How many events wait for the next append: the caller slows down when this grows. */
  get backlog(): number {
    return this.#buffer.length;
  }

  /**
   * Queues an event; throws the failure of an earlier append, if any. The append starts on the
   * next microtask, so events pushed together go together, and a transition that follows at
   * once can take them along instead ({@link takeBuffered}).
   */
  push(event: Event): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.#buffer.push(event);
    if (this.#inFlight === undefined && !this.#scheduled) {
      this.#scheduled = true;
      (this.untilTurnEnds ? setImmediate : queueMicrotask)(() => {
        this.#scheduled = false;
        if (this.#buffer.length > 0) this.#inFlight ??= this.#appendBuffered();
      });
    }
  }

  /** Resolves when everything pushed so far is stored; rejects when an append failed. */
  async flush(): Promise<void> {
    if (this.#buffer.length > 0 && this.#failure === undefined) this.#inFlight ??= this.#appendBuffered();
    while (this.#inFlight) await this.#inFlight;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Whether an append is in flight. */
  get busy(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Throws the failure of an earlier append, if any. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Resolves when no append is in flight (queued events may remain); rejects when one failed. */
  async drain(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Hands over the queued events, if no append is in flight (else `[]`: flush first), so that the
   * caller writes them in its own store call, before its own events, saving a round trip.
   * The caller must then either write them or give them back with {@link giveBack}.
   */
  takeBuffered(): Event[] {
    if (this.#inFlight !== undefined || this.#failure !== undefined) return [];
    return this.#buffer.splice(0, this.#buffer.length);
  }

  /** Puts events taken with {@link takeBuffered} back in front of the queue. */
  giveBack(events: Event[]): void {
    if (events.length > 0) this.#buffer.unshift(...events);
  }

  async #appendBuffered(): Promise<void> {
    try {
      if (this.prepare !== undefined) await this.prepare();
      while (this.#buffer.length > 0 && this.#failure === undefined) {
        const batch = this.#buffer.splice(0, this.maxBatch);
        const deadline = Date.now() + this.outageMs;
        const append = (): Promise<number> => this.#appendOnce(batch);
        try {
          // The first attempt awaited as it is: retries only after a failure.
          this.#lastSeq = await append();
        } catch (error) {
          this.#lastSeq = await retryOutageAfter(error, append, deadline);
        }
      }
    } catch (error) {
      this.#failure = error;
      this.#buffer = [];
      if (error instanceof RunGoneError) this.onGone?.();
    } finally {
      this.#inFlight = undefined;
    }
  }

  /** One attempt to append `batch`: the seq of its last event. */
  #appendOnce(batch: Event[]): Promise<number> {
    return this.#uncertain ? this.#appendUncertain(batch) : this.#append(batch);
  }

  /** After an append that may have landed: the tail tells what did, once that append can land no more. */
  async #appendUncertain(batch: Event[]): Promise<number> {
    if (this.#pending) await this.#waitForPending(this.#pending);
    const landed = await this.store.readEvents(this.runId, this.#lastSeq, batch.length);
    if (landed.length === batch.length) {
      this.#uncertain = false;
      return this.#lastSeq + batch.length;
    }
    return await this.#append(batch);
  }

  /** Appends `batch`; not async: the store call's promise and one then. */
  #append(batch: Event[]): Promise<number> {
    this.#uncertain = true;
    let call: Promise<number | null>;
    try {
      call =
        this.epoch === undefined
          ? this.store.appendEvents(this.runId, batch)
          : this.store.appendEvents(this.runId, batch, this.epoch);
    } catch (error) {
      this.#pending = whenLanded(error);
      return Promise.reject(error);
    }
    return call.then(
      (seq) => {
        this.#uncertain = false;
        if (seq === null) throw new RunGoneError(this.runId);
        return seq;
      },
      (error: unknown) => {
        this.#pending = whenLanded(error);
        throw error;
      },
    );
  }

  /** Waits a little for `pending`; throws a store outage (retried by the caller) if it runs on. */
  async #waitForPending(pending: Promise<void>): Promise<void> {
    await waitLanded(pending, LANDED_WAIT_MS, `an earlier append to run ${this.runId}`);
    if (this.#pending === pending) this.#pending = undefined;
  }
}

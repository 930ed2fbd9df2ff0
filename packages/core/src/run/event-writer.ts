/**
 * Appends a run's events in order with group commit: while one append is in flight, later events
 * wait in a buffer and go to the store together in the next append. A fast agent therefore costs
 * one store round trip per batch, not per token, and the order is kept.
 */
import type { Event } from "../models.ts";
import type { Store } from "../store.ts";

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
  #lastSeq = 0;

  constructor(
    private readonly store: Store,
    private readonly runId: string,
    private readonly maxBatch = 256,
  ) {}

  /** The seq of the last event the store has confirmed. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Queues an event; throws the failure of an earlier append, if any. */
  push(event: Event): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.#buffer.push(event);
    this.#inFlight ??= this.#drain();
  }

  /** Resolves when everything pushed so far is stored; rejects when an append failed. */
  async flush(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** How many events wait for the next append: the caller slows down when this grows. */
  get backlog(): number {
    return this.#buffer.length;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#buffer.length > 0 && this.#failure === undefined) {
        const batch = this.#buffer.splice(0, this.maxBatch);
        const seq = await this.store.appendEvents(this.runId, batch);
        if (seq === null) throw new RunGoneError(this.runId);
        this.#lastSeq = seq;
      }
    } catch (error) {
      this.#failure = error;
      this.#buffer = [];
    } finally {
      this.#inFlight = undefined;
    }
  }
}

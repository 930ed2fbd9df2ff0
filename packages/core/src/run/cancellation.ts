/**
 * A cancel flag with listeners, and an `AbortSignal` made only when someone asks for it: on
 * Node 20 every AbortController costs several microseconds, and most runs are never cancelled.
 */
export class Cancellation {
  #aborted = false;
  #controller: AbortController | undefined;
  readonly #listeners = new Set<() => void>();

  get aborted(): boolean {
    return this.#aborted;
  }

  /** An AbortSignal that aborts with this cancellation (created on first use). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort();
    for (const listener of this.#listeners) listener();
    this.#listeners.clear();
  }

  /** Calls `listener` once on abort; returns what removes it. */
  onAbort(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

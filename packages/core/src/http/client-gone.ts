/**
 * Notices clients of sync requests that go away before their answer, without an `AbortSignal`
 * listener for every request: on Node, asking a request for its signal builds an
 * AbortController (several microseconds), and most sync runs settle within a millisecond. A
 * request still waiting after one sweep interval gets a listener on its signal then; a client
 * that left meanwhile is seen at once, as its request's signal is already aborted.
 */

/** How often requests still waiting get a listener on their signal: a request waits one to two intervals for it. */
export const CLIENT_WATCH_MS = 50;

interface Watched {
  request: Request;
  onGone: () => void;
  /** Set once the request's signal is listened to. */
  listening: boolean;
}

export class ClientWatch {
  /** Requests added since the last sweep. */
  #young = new Set<Watched>();
  /** Requests present at the last sweep: the next one listens to their signals. */
  #old = new Set<Watched>();
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = CLIENT_WATCH_MS) {}

  /**
   * Calls `onGone` once if the client of `request` goes away before the returned function is
   * called (within about two sweep intervals of it going, or at once after that).
   */
  watch(request: Request, onGone: () => void): () => void {
    const watched: Watched = { request, onGone, listening: false };
    this.#young.add(watched);
    this.#timer ??= setInterval(() => this.#sweep(), this.intervalMs).unref();
    return () => this.#stop(watched);
  }

  #stop(watched: Watched): void {
    if (watched.listening) watched.request.signal.removeEventListener("abort", watched.onGone);
    else if (!this.#young.delete(watched)) this.#old.delete(watched);
  }

  #sweep(): void {
    for (const watched of this.#old) {
      watched.listening = true;
      const signal = watched.request.signal;
      if (signal.aborted) watched.onGone();
      else signal.addEventListener("abort", watched.onGone, { once: true });
    }
    const swept = this.#old;
    swept.clear();
    this.#old = this.#young;
    this.#young = swept;
    if (this.#old.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** Runs, events and a listener probe for the tests of this package. */
import type { ChangeKind, Event, StoredRun } from "@acp/core";
import { randomUUID } from "node:crypto";

/** A run record that has not ended, with a random id. */
export function newRun(): StoredRun {
  return {
    run: {
      run_id: randomUUID(),
      agent_name: "store-postgres-test",
      status: "in-progress",
      output: [],
      created_at: new Date().toISOString(),
    },
    version: 1,
    owner: "test-instance",
  };
}

/** An event that tests can tell apart by its label. */
export function label(value: string | number): Event {
  return { type: "generic", generic: { label: value } };
}

/** Records the calls of a change listener; take `next()` before the change you wait for. */
export class Probe {
  readonly kinds: (ChangeKind | undefined)[] = [];
  #waiters: { accept: (kind: ChangeKind | undefined) => boolean; resolve: () => void }[] = [];

  readonly listener = (kind?: ChangeKind): void => {
    this.kinds.push(kind);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.accept(kind)) return true;
      waiter.resolve();
      return false;
    });
  };

  /** Resolves at the next call (of the given kind, when `accept` is passed). */
  next(accept: (kind: ChangeKind | undefined) => boolean = () => true): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ accept, resolve }));
  }
}

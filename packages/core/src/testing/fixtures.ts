/**
 * Builders for valid runs, events and history items, and the small waiting helpers the suite
 * needs. Fixtures never carry `undefined` properties, so they compare equal after a JSON round
 * trip through a serialising store.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { Event, Message, RunStatus } from "../models.ts";
import type { ChangeKind, HistoryItem, StepRecord, Store, StoredRun } from "../store.ts";

/** A new run record with a random id, `version: 1` and the given status. */
export function newRun(status: RunStatus = "created"): StoredRun {
  return {
    run: {
      run_id: randomUUID(),
      agent_name: "conformance",
      session_id: randomUUID(),
      status,
      output: [],
      created_at: new Date().toISOString(),
    },
    version: 1,
    owner: `instance-${randomUUID()}`,
  };
}

/** A copy of `record` with another status (and `finished_at` when the status is terminal). */
export function withStatus(record: StoredRun, status: RunStatus): StoredRun {
  const next = structuredClone(record);
  next.run.status = status;
  if (status === "completed" || status === "failed" || status === "cancelled")
    next.run.finished_at = new Date().toISOString();
  return next;
}

/** The `run.<status>` event for a record, as the runtime would append it. */
export function runEvent(record: StoredRun): Event {
  const type = `run.${record.run.status}` as const;
  if (type === "run.cancelling") throw new TypeError("there is no run.cancelling event");
  return { type, run: structuredClone(record.run) } as Event;
}

/** A `generic` event carrying a label, so tests can tell events apart. */
export function label(value: string | number): Event {
  return { type: "generic", generic: { label: value } };
}

/** The label of an event made by {@link label}, or `undefined` for other events. */
export function labelOf(event: Event): unknown {
  return event.type === "generic" ? event.generic.label : undefined;
}

/** A step that returned `value`, recorded as the runtime would: its JSON text in `result`. */
export function stepRecord(index: number, name: string, value: unknown): StepRecord {
  return { index, name, result: JSON.stringify(value) };
}

/** A user text message. */
export function textMessage(text: string): Message {
  return { role: "user", parts: [{ content_type: "text/plain", content: text, content_encoding: "plain" }] };
}

/** A history item with a random id. */
export function historyItem(text: string): HistoryItem {
  return { id: randomUUID(), message: textMessage(text) };
}

/**
 * Appends `items` to a session the one way a store takes history: with the last update of a
 * run (a new one, created here and completed with them).
 */
export async function writeHistory(store: Store, sessionId: string, items: HistoryItem[]): Promise<void> {
  const record = newRun("in-progress");
  assert.equal(await store.createRun(record, []), true, "the run that carries the history was not created");
  const result = await store.updateRun(record.run.run_id, 1, withStatus(record, "completed"), [], {
    history: { sessionId, items },
  });
  assert.equal(result.ok, true, "the update that carries the history did not apply");
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (waited ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a test waits for a change notification before it calls it lost. */
export const NOTIFY_TIMEOUT_MS = 3_000;

/** Waits for a listener call taken from {@link ListenerProbe.next}; fails after `NOTIFY_TIMEOUT_MS`. */
export function signalled(call: Promise<void>, what: string): Promise<void> {
  return within(call, NOTIFY_TIMEOUT_MS, what);
}

/**
 * Records the calls of a change listener and lets a test wait for the next one. Take `next()`
 * before making the change, so that a call that comes early is not missed.
 */
export class ListenerProbe {
  readonly kinds: (ChangeKind | undefined)[] = [];
  #waiters: { accept: (kind: ChangeKind | undefined) => boolean; resolve: () => void }[] = [];

  /** The listener to pass to `subscribe`. */
  readonly listener = (change?: ChangeKind): void => {
    this.kinds.push(change);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.accept(change)) return true;
      waiter.resolve();
      return false;
    });
  };

  get calls(): number {
    return this.kinds.length;
  }

  /** Resolves at the first call after this moment (of a kind `accept` takes, when given). */
  next(accept: (kind: ChangeKind | undefined) => boolean = () => true): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ accept, resolve }));
  }
}

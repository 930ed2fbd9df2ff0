/**
 * Following a run over an in-process memory store: `waitForRecord` wakes on record changes (not
 * on events), and one reader over RunFeeds and RunWatch (`followEvents` below) reads a log from
 * any position, live, page by page, to its end. Both fall back on their poll when a notification
 * is lost.
 */
import { MemoryStore } from "@acp/store-memory";
import { describe, expect, it } from "vitest";
import { controlledStore } from "../../test/support/controlled-store.ts";
import type { Event } from "../models.ts";
import type { ChangeListener, Store, StoredEvent, StoredRun } from "../store.ts";
import { label, labelOf, newRun, runEvent, within, withStatus } from "../testing/index.ts";
import { waitForRecord } from "./follow.ts";
import { RunFeeds } from "./run-feed.ts";
import { RunWatch } from "./run-watch.ts";

/** Long enough that a test passing within a fraction of it did not rely on the poll. */
const NO_POLL = 60_000;

interface FollowOptions {
  /** Start after this seq: 0 reads from the first event. */
  afterSeq: number;
  signal?: AbortSignal;
  /** Look at the store after this long without a notification (a lost notification costs at most this). @default 10_000 */
  pollMs?: number;
}

/**
 * One reader of a run's events over a feed and a watch of its own, as an app's streams read them
 * through the runtime's shared RunFeeds and RunWatch: yields the events with `seq > afterSeq` in
 * order, then waits for more, checked every `pollMs`. Ends when `signal` aborts, the run
 * disappears from the store, or the run has ended and nothing is left.
 */
async function* followEvents(store: Store, runId: string, options: FollowOptions): AsyncGenerator<StoredEvent> {
  const { signal, pollMs = NO_POLL } = options;
  const watch = new RunWatch(store, pollMs);
  const follower = new RunFeeds(store, watch).follow(runId, options.afterSeq);
  const stop = (): void => void follower.close();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    if (signal?.aborted) return;
    for (let next = await follower.next(); next !== undefined; next = await follower.next()) {
      const { seq, event } = next;
      yield { seq, event };
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    await follower.close();
    watch.stop();
  }
}

/** `inner` whose notifications never arrive (a lost pub/sub message), counting open subscriptions. */
function deafStore(inner: Store): { store: Store; open: () => number } {
  let open = 0;
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === "subscribe") {
        return async (runId: string, _listener: ChangeListener) => {
          const unsubscribe = await target.subscribe(runId, () => {});
          open += 1;
          return async () => {
            open -= 1;
            await unsubscribe();
          };
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, open: () => open };
}

/** A stored run with `count` labelled events (0 … count-1) after its run.created event. */
async function runWithEvents(
  store: Store,
  count: number,
  status: StoredRun["run"]["status"] = "in-progress",
): Promise<StoredRun> {
  const record = newRun(status);
  const events: Event[] = [
    runEvent(withStatus(record, "created")),
    ...Array.from({ length: count }, (_, i) => label(i)),
  ];
  expect(await store.createRun(record, events)).toBe(true);
  return record;
}

async function collect(iterator: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> {
  const all: StoredEvent[] = [];
  for await (const stored of iterator) all.push(stored);
  return all;
}

/** Ends `record`'s run as completed, appending its terminal event. */
async function complete(store: Store, record: StoredRun, version = record.version): Promise<void> {
  const ended = withStatus(record, "completed");
  expect((await store.updateRun(record.run.run_id, version, ended, [runEvent(ended)])).ok).toBe(true);
}

describe("waitForRecord", () => {
  it("resolves at once with a record that is done already", async () => {
    const store = new MemoryStore();
    const record = await runWithEvents(store, 0);
    expect(await waitForRecord(store, record.run.run_id, () => true, { pollMs: NO_POLL })).toEqual(record);
  });

  it("re-reads on a record change and resolves once done holds", async () => {
    const store = new MemoryStore();
    const record = await runWithEvents(store, 0);
    const waiting = waitForRecord(store, record.run.run_id, (stored) => stored.run.status === "completed", {
      pollMs: NO_POLL,
    });
    const cancelling = withStatus(record, "cancelling");
    expect((await store.updateRun(record.run.run_id, 1, cancelling, [])).ok).toBe(true);
    await complete(store, record, 2);
    const done = await within(waiting, 2_000, "waitForRecord did not wake on the change");
    expect(done).toMatchObject({ version: 3, run: { status: "completed" } });
  });

  it("does not re-read the record for appended events", async () => {
    const { store, control } = controlledStore();
    const record = await runWithEvents(store, 0);
    const abort = new AbortController();
    const waiting = waitForRecord(store, record.run.run_id, () => false, { signal: abort.signal, pollMs: NO_POLL });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reads = control.calls.getRun;
    await store.appendEvents(record.run.run_id, [label("x"), label("y")]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(control.calls.getRun).toBe(reads);
    abort.abort();
    expect(await waiting).toBeUndefined();
  });

  it("resolves undefined for an unknown run, and when its signal aborts", async () => {
    const store = new MemoryStore();
    expect(await waitForRecord(store, crypto.randomUUID(), () => true)).toBeUndefined();
    const record = await runWithEvents(store, 0);
    const abort = new AbortController();
    const waiting = waitForRecord(store, record.run.run_id, () => false, { signal: abort.signal, pollMs: NO_POLL });
    abort.abort();
    expect(await within(waiting, 1_000, "the abort did not end the wait")).toBeUndefined();
  });

  it("finds a change whose notification was lost on its next poll, and unsubscribes when done", async () => {
    const { store, open } = deafStore(new MemoryStore());
    const record = await runWithEvents(store, 0);
    const waiting = waitForRecord(store, record.run.run_id, (stored) => stored.run.status === "completed", {
      pollMs: 20,
    });
    await complete(store, record);
    expect((await within(waiting, 2_000, "the poll did not find the change"))!.run.status).toBe("completed");
    expect(open()).toBe(0);
  });
});

describe("followEvents", () => {
  it("yields the events after afterSeq, then the new ones as they come, in order", async () => {
    const store = new MemoryStore();
    const record = await runWithEvents(store, 3);
    const runId = record.run.run_id;
    const seen: StoredEvent[] = [];
    const following = (async () => {
      for await (const stored of followEvents(store, runId, { afterSeq: 2, pollMs: NO_POLL })) {
        seen.push(stored);
        if (seen.length === 2) {
          // Past what was there when it started: these come live.
          await store.appendEvents(runId, [label(3), label(4)]);
          await complete(store, record);
        }
        // As the SSE stream does: the caller stops at what it waited for.
        if (stored.event.type === "run.completed") break;
      }
    })();
    await within(following, 2_000, "the follower did not wake for the new events");
    expect(seen.map((stored) => stored.seq)).toEqual([3, 4, 5, 6, 7]);
    expect(seen.slice(0, 4).map((stored) => labelOf(stored.event))).toEqual([1, 2, 3, 4]);
    expect(seen.at(-1)!.event.type).toBe("run.completed");
  });

  it("reads a log longer than a page, in order, and ends by itself once the ended run has nothing left", async () => {
    const store = new MemoryStore();
    const record = await runWithEvents(store, 1_234, "completed");
    const all = await within(
      collect(followEvents(store, record.run.run_id, { afterSeq: 0, pollMs: 20 })),
      2_000,
      "the follower did not end",
    );
    expect(all).toHaveLength(1_235);
    expect(all.map((stored) => stored.seq)).toEqual(Array.from({ length: 1_235 }, (_, i) => i + 1));
    expect(labelOf(all.at(-1)!.event)).toBe(1_233);
  });

  it("ends by itself, with nothing, for an unknown run and for an ended run read past its end", async () => {
    const store = new MemoryStore();
    const follow = (runId: string, afterSeq: number): Promise<StoredEvent[]> =>
      within(
        collect(followEvents(store, runId, { afterSeq, pollMs: 20 })),
        1_000,
        `the follower of ${runId} after ${afterSeq} did not end`,
      );
    expect(await follow(crypto.randomUUID(), 0)).toEqual([]);
    const record = await runWithEvents(store, 2, "completed");
    expect(await follow(record.run.run_id, 3)).toEqual([]);
    expect(await follow(record.run.run_id, 99)).toEqual([]);
  });

  it("ends when its signal aborts, and unsubscribes", async () => {
    const { store, open } = deafStore(new MemoryStore());
    const record = await runWithEvents(store, 1);
    const abort = new AbortController();
    const seen: number[] = [];
    const following = (async () => {
      for await (const stored of followEvents(store, record.run.run_id, {
        afterSeq: 0,
        signal: abort.signal,
        pollMs: NO_POLL,
      })) {
        seen.push(stored.seq);
        if (seen.length === 2) abort.abort();
      }
    })();
    await within(following, 1_000, "the abort did not end the follower");
    expect(seen).toEqual([1, 2]);
    expect(open()).toBe(0);
  });

  it("finds events whose notification was lost on its next poll", async () => {
    const { store } = deafStore(new MemoryStore());
    const record = await runWithEvents(store, 0);
    const seen: StoredEvent[] = [];
    const following = (async () => {
      for await (const stored of followEvents(store, record.run.run_id, { afterSeq: 1, pollMs: 20 })) seen.push(stored);
    })();
    await store.appendEvents(record.run.run_id, [label("late")]);
    await complete(store, record);
    await within(following, 2_000, "the poll did not find the events");
    expect(seen.map((stored) => stored.event.type)).toEqual(["generic", "run.completed"]);
  });
});

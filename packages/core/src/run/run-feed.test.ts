/**
 * The instance's shared readers (RunFeeds) and its one periodic check (RunWatch), over a memory
 * store that counts its calls, can lose notifications and can fail reads: what idle and
 * fanned-out followers cost the store, that a lost notification is caught up by the periodic
 * check, and that a failed shared read is retried rather than ending every follower.
 */
import { MemoryStore } from "@acp/store-memory";
import { describe, expect, it } from "vitest";
import { testAgents } from "../../test/support/agents.ts";
import { eventually } from "../../test/support/app.ts";
import { interceptStore } from "../../test/support/intercept-store.ts";
import type { Event, RunStatus } from "../models.ts";
import { type ChangeListener, type Store, type StoredRun, StoreError, StoreRefusedError } from "../store.ts";
import { FEED_BUFFER, type Follower, RunFeeds, type RunFeedsOptions, WAITING } from "./run-feed.ts";
import { HEADS_BATCH, RunWatch } from "./run-watch.ts";
import { Runtime } from "./runtime.ts";

/**
 * A memory store that counts its calls by method, whose notifications can be switched off, and
 * whose next `readEvents` calls can fail (`failReads.left` of them, with `failReads.error()`).
 */
function countingStore(): {
  store: Store;
  calls: Map<string, number>;
  total(): number;
  deaf: { on: boolean };
  failReads: { left: number; error: () => Error };
} {
  const inner = new MemoryStore();
  const calls = new Map<string, number>();
  const deaf = { on: false };
  const failReads = { left: 0, error: (): Error => new StoreError("test", "readEvents() did not answer in time") };
  const store = interceptStore(inner, (method, args, call) => {
    calls.set(method, (calls.get(method) ?? 0) + 1);
    if (method === "readEvents" && failReads.left > 0) {
      failReads.left--;
      return Promise.reject(failReads.error());
    }
    if (method === "subscribe") {
      const [runId, listener] = args as [string, ChangeListener];
      return inner.subscribe(runId, (change, version) => {
        if (!deaf.on) listener(change, version);
      });
    }
    return call();
  });
  const total = (): number => [...calls.values()].reduce((sum, n) => sum + n, 0);
  return { store, calls, total, deaf, failReads };
}

function record(status: RunStatus = "awaiting"): StoredRun {
  return {
    run: {
      run_id: crypto.randomUUID(),
      agent_name: "test",
      session_id: crypto.randomUUID(),
      status,
      output: [],
      error: null,
      created_at: new Date().toISOString(),
    },
    version: 1,
    owner: "someone",
  };
}

const label = (n: number): Event => ({ type: "generic", generic: { n } });

/** Takes `count` events from the follower: their seqs. */
async function take(follower: Follower, count: number): Promise<number[]> {
  const seqs: number[] = [];
  while (seqs.length < count) {
    const next = await follower.next();
    if (next === undefined) break;
    seqs.push(next.seq);
  }
  return seqs;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** An hour: the periodic check runs only when a test calls checkNow(). */
const NEVER = 3_600_000;

/** A run in progress stored with `events`, and feeds over the counting store (a watch that never checks). */
async function runInProgress(
  events: Event[],
  options?: RunFeedsOptions,
): Promise<{ counted: ReturnType<typeof countingStore>; feeds: RunFeeds; runId: string }> {
  const counted = countingStore();
  const feeds = new RunFeeds(counted.store, new RunWatch(counted.store, NEVER), options);
  const stored = record("in-progress");
  await counted.store.createRun(stored, events);
  return { counted, feeds, runId: stored.run.run_id };
}

describe("RunFeeds and RunWatch", () => {
  it("cost the store one call per check for idle followers, whatever their number", async () => {
    const counted = countingStore();
    const watch = new RunWatch(counted.store, NEVER);
    const feeds = new RunFeeds(counted.store, watch);
    const callsPerCheck = async (followers: number): Promise<number> => {
      const open: Follower[] = [];
      for (let i = 0; i < followers; i++) {
        const stored = record();
        await counted.store.createRun(stored, [label(1)]);
        const follower = feeds.follow(stored.run.run_id, 0);
        expect(await take(follower, 1)).toEqual([1]);
        open.push(follower);
      }
      const before = counted.total();
      for (let i = 0; i < 3; i++) await watch.checkNow();
      const perCheck = (counted.total() - before) / 3;
      for (const follower of open) follower.close();
      return perCheck;
    };
    expect(await callsPerCheck(1)).toBe(1);
    expect(await callsPerCheck(HEADS_BATCH)).toBe(1);
    // Past one batch, one more call per batch: still not one per follower.
    expect(await callsPerCheck(HEADS_BATCH + 1)).toBe(2);
    expect(counted.calls.get("getRunHeads")).toBe(3 + 3 + 6);
    expect(watch.size).toBe(0);
    expect(feeds.size).toBe(0);
  });

  it("read a run once per change for all its followers, each of which gets every event once, in order", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1)]);
    const followers = Array.from({ length: 200 }, () => feeds.follow(runId, 0));
    const seen = followers.map((follower) => take(follower, 21));
    await eventually(async () => (counted.calls.get("readEvents") ?? 0) > 0);
    for (let n = 2; n <= 21; n++) {
      await counted.store.appendEvents(runId, [label(n)]);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    for (const seqs of await Promise.all(seen)) expect(seqs).toEqual(range(1, 21));
    expect(counted.calls.get("subscribe")).toBe(1);
    // One read per append at most, plus the first ones: not one per follower.
    expect(counted.calls.get("readEvents")).toBeLessThanOrEqual(21 + 3);
    for (const follower of followers) follower.close();
  });

  it("hand a follower the rest of a batch at hand with take(), without waiting or repeating", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1), label(2), label(3)]);
    const follower = feeds.follow(runId, 0);
    expect(follower.take()).toBeUndefined();
    expect((await follower.next())?.seq).toBe(1);
    expect([follower.take()?.seq, follower.take()?.seq, follower.take()]).toEqual([2, 3, undefined]);
    const waiting = follower.next();
    await counted.store.appendEvents(runId, [label(4), label(5)]);
    expect((await waiting)?.seq).toBe(4);
    expect(follower.take()?.seq).toBe(5);
    expect(follower.take()).toBeUndefined();
    expect(follower.position).toBe(5);
    await follower.close();
    expect(follower.take()).toBeUndefined();
  });

  it("wake a polling follower's sink, with no promise pending, when the feed is ready and when it moves", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1), label(2)]);
    const follower = feeds.follow(runId, 0);
    let woken = 0;
    const sink = { woken: () => void woken++ };
    // Not subscribed yet: the sink hears once it is.
    expect(follower.poll(sink)).toBe(WAITING);
    await eventually(() => woken === 1);
    await eventually(() => follower.take() !== undefined || undefined);
    expect(follower.poll(sink)).toMatchObject({ seq: 2 });
    expect(follower.poll(sink)).toBe(WAITING);
    await counted.store.appendEvents(runId, [label(3)]);
    await eventually(() => woken === 2);
    expect(follower.poll(sink)).toMatchObject({ seq: 3 });
    // Closing wakes a waiting sink, whose poll then finds the follower done.
    expect(follower.poll(sink)).toBe(WAITING);
    await follower.close();
    expect(woken).toBe(3);
    expect(follower.poll(sink)).toBeUndefined();
  });

  it("drop the events a feed kept once its only follower has taken them; followers that join later share one read", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1), label(2), label(3)]);
    const first = feeds.follow(runId, 0);
    expect(await take(first, 3)).toEqual([1, 2, 3]);
    const reads = counted.calls.get("readEvents") ?? 0;
    // The feed reads the log again from where the second starts, for it and those after it.
    const second = feeds.follow(runId, 0);
    expect(await take(second, 3)).toEqual([1, 2, 3]);
    expect(counted.calls.get("readEvents")).toBe(reads + 1);
    const third = feeds.follow(runId, 1);
    expect(await take(third, 2)).toEqual([2, 3]);
    expect(counted.calls.get("readEvents")).toBe(reads + 1);
    await counted.store.appendEvents(runId, [label(4)]);
    for (const follower of [first, second, third]) expect(await take(follower, 1)).toEqual([4]);
    await Promise.all([first.close(), second.close(), third.close()]);
  });

  it("let a follower from an older seq catch up on its own, and one that fell behind the feed read on its own", async () => {
    const counted = countingStore();
    const feeds = new RunFeeds(counted.store, new RunWatch(counted.store, NEVER));
    const stored = record("in-progress");
    const runId = stored.run.run_id;
    const total = FEED_BUFFER * 3;
    await counted.store.createRun(
      stored,
      range(1, 10).map((n) => label(n)),
    );
    const fast = feeds.follow(runId, 5);
    expect(await take(fast, 5)).toEqual(range(6, 10));
    // Joins later, from the start: reads 1..5 itself, then takes the feed's.
    const late = feeds.follow(runId, 0);
    expect(await take(late, 3)).toEqual([1, 2, 3]);
    // `late` stops taking while many events go by: the feed keeps FEED_BUFFER of them.
    const fastSeen = take(fast, total - 10);
    for (let n = 11; n <= total; n += 50) {
      await counted.store.appendEvents(
        runId,
        range(n, Math.min(total, n + 49)).map((m) => label(m)),
      );
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(await fastSeen).toEqual(range(11, total));
    expect(await take(late, total - 3)).toEqual(range(4, total));
    fast.close();
    late.close();
  });

  it("read a long log page by page as their followers take it, not ahead of them", async () => {
    const counted = countingStore();
    const feeds = new RunFeeds(counted.store, new RunWatch(counted.store, NEVER));
    const stored = record("in-progress");
    const total = FEED_BUFFER * 8;
    await counted.store.createRun(
      stored,
      range(1, total).map((n) => label(n)),
    );
    const followers = Array.from({ length: 10 }, () => feeds.follow(stored.run.run_id, 0));
    for (const follower of followers) expect(await take(follower, 10)).toEqual(range(1, 10));
    await new Promise((resolve) => setTimeout(resolve, 20));
    // One page for all ten, and nothing read past it while they take it.
    expect(counted.calls.get("readEvents")).toBe(1);
    // Taken together, page after page: one read per page for all.
    for (const seqs of await Promise.all(followers.map((follower) => take(follower, total - 10))))
      expect(seqs).toEqual(range(11, total));
    expect(counted.calls.get("readEvents")).toBeLessThanOrEqual(8 + 2);
    for (const follower of followers) await follower.close();
  });

  it("do not read ahead of a slow follower at their periodic checks", async () => {
    const counted = countingStore();
    // A check every few milliseconds: many of them while the follower takes nothing.
    const watch = new RunWatch(counted.store, 5);
    const feeds = new RunFeeds(counted.store, watch);
    const stored = record("in-progress");
    const total = FEED_BUFFER * 4;
    await counted.store.createRun(
      stored,
      range(1, total).map((n) => label(n)),
    );
    const follower = feeds.follow(stored.run.run_id, 0);
    expect(await take(follower, 10)).toEqual(range(1, 10));
    const checked = counted.calls.get("getRunHeads") ?? 0;
    await eventually(() => (counted.calls.get("getRunHeads") ?? 0) >= checked + 5);
    // The log moved past what the feed read, but the feed is behind it on purpose: one page, no more.
    expect(counted.calls.get("readEvents")).toBe(1);
    expect(await take(follower, total - 10)).toEqual(range(11, total));
    // One read per page, by the feed: the follower never fell behind it and read on its own.
    expect(counted.calls.get("readEvents")).toBeLessThanOrEqual(4 + 2);
    await follower.close();
    expect(watch.size).toBe(0);
  });

  it("catch up a lost notification at the next periodic check, and end with the run", async () => {
    const counted = countingStore();
    const watch = new RunWatch(counted.store, NEVER);
    const feeds = new RunFeeds(counted.store, watch);
    const stored = record("in-progress");
    const runId = stored.run.run_id;
    await counted.store.createRun(stored, [label(1)]);
    const follower = feeds.follow(runId, 0);
    expect(await take(follower, 1)).toEqual([1]);
    counted.deaf.on = true;
    const reads = counted.calls.get("readEvents");
    await counted.store.appendEvents(runId, [label(2)]);
    let got: number | undefined;
    const next = follower.next().then((event) => {
      got = event?.seq;
      return event;
    });
    // Unheard: whatever was pending has run, and nothing read the log or handed the event out.
    await new Promise((resolve) => setImmediate(resolve));
    expect(counted.calls.get("readEvents")).toBe(reads);
    expect(got).toBeUndefined();
    await watch.checkNow();
    expect((await next)?.seq).toBe(2);
    // The run ends, unheard: the check sees it, the follower gets the terminal event, then ends.
    const ended: StoredRun = { ...stored, run: { ...stored.run, status: "completed" } };
    expect((await counted.store.updateRun(runId, 1, ended, [{ type: "run.completed", run: ended.run }])).ok).toBe(true);
    const last = follower.next();
    await watch.checkNow();
    expect((await last)?.event.type).toBe("run.completed");
    expect(await follower.next()).toBeUndefined();
    // A follower past the end of an ended run ends at once.
    const after = feeds.follow(runId, 3);
    expect(await after.next()).toBeUndefined();
  });

  it("retry a shared read that failed for a store outage, while every follower waits", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1)]);
    const followers = Array.from({ length: 5 }, () => feeds.follow(runId, 0));
    for (const follower of followers) expect(await take(follower, 1)).toEqual([1]);
    const reads = counted.calls.get("readEvents") ?? 0;
    // The shared read of the next change fails twice, then succeeds: no follower sees the failures.
    counted.failReads.left = 2;
    const seen = followers.map((follower) => take(follower, 2));
    await counted.store.appendEvents(runId, [label(2)]);
    await counted.store.appendEvents(runId, [label(3)]);
    for (const seqs of await Promise.all(seen)) expect(seqs).toEqual([2, 3]);
    expect(counted.failReads.left).toBe(0);
    // Two failed tries and what it took to read both events: not a read per follower.
    expect((counted.calls.get("readEvents") ?? 0) - reads).toBeLessThanOrEqual(2 + 2);
    expect(counted.calls.get("subscribe")).toBe(1);
    for (const follower of followers) await follower.close();
    expect(feeds.size).toBe(0);
  });

  it("fail their followers when the store refuses the shared read, or when an outage outlasts the budget", async () => {
    const { counted, feeds, runId } = await runInProgress([label(1)], { outageMs: 500 });
    const followers = Array.from({ length: 3 }, () => feeds.follow(runId, 0));
    for (const follower of followers) expect(await take(follower, 1)).toEqual([1]);
    // A refusal would be refused again: not retried, every waiting follower gets it.
    counted.failReads.left = 1;
    counted.failReads.error = () => new StoreRefusedError("test", "refused");
    const refused = followers.map((follower) => follower.next());
    await counted.store.appendEvents(runId, [label(2)]);
    for (const next of refused) await expect(next).rejects.toBeInstanceOf(StoreRefusedError);
    expect(counted.failReads.left).toBe(0);
    // An outage that lasts: retried for about `outageMs`, then every waiting follower gets it.
    counted.failReads.left = Number.POSITIVE_INFINITY;
    counted.failReads.error = () => new StoreError("test", "readEvents() did not answer in time");
    const reads = counted.calls.get("readEvents") ?? 0;
    const failed = followers.map((follower) => follower.next());
    await counted.store.appendEvents(runId, [label(3)]);
    for (const next of failed) await expect(next).rejects.toThrow("did not answer in time");
    expect((counted.calls.get("readEvents") ?? 0) - reads).toBeGreaterThan(1);
    // The store is back: the next change is read, and the followers go on from where they were.
    counted.failReads.left = 0;
    const resumed = followers.map((follower) => take(follower, 3));
    await counted.store.appendEvents(runId, [label(4)]);
    for (const seqs of await Promise.all(resumed)) expect(seqs).toEqual([2, 3, 4]);
    for (const follower of followers) await follower.close();
  });

  it("see a cancel whose notification was lost at the instance's next check (executor and wait)", async () => {
    const counted = countingStore();
    const owner = new Runtime({ store: counted.store, agents: testAgents });
    const other = new Runtime({ store: counted.store, agents: testAgents });
    const created = await owner.createRun({
      agent_name: "slow",
      input: [
        {
          role: "user",
          parts: [{ content_type: "text/plain", content: "ticks=100000 ms=10", content_encoding: "plain" }],
        },
      ],
      mode: "async",
    });
    const runId = created.run.run_id;
    counted.deaf.on = true;
    await other.cancel(runId);
    const settled = other.whenSettled(runId, 1);
    // Neither instance hears the cancel: their periodic checks find the record moved.
    await owner.watch.checkNow();
    await eventually(async () => owner.localRuns === 0);
    await other.watch.checkNow();
    expect((await settled).run.status).toBe("cancelled");
    await owner.shutdown({ deadlineMs: 100 });
    await other.shutdown({ deadlineMs: 100 });
  });
});

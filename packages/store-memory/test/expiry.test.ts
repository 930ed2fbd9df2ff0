import { newRun } from "@acp/core/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MemoryStore } from "../src/index.ts";

describe("MemoryStore expiry", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("drops expired runs on its timer, without a read, and wakes their subscribers", async () => {
    const store = new MemoryStore({ ttlMs: 5_000 });
    const record = newRun("in-progress");
    await store.createRun(record, []);
    const listener = vi.fn();
    await store.subscribe(record.run.run_id, listener);

    await vi.advanceTimersByTimeAsync(4_000);
    expect(listener).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(6_000);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(await store.getRun(record.run.run_id)).toBeUndefined();
    await store.close();
  });

  it("still expires on read once close() has stopped the timer", async () => {
    const store = new MemoryStore({ ttlMs: 5_000 });
    const record = newRun("in-progress");
    await store.createRun(record, []);
    const listener = vi.fn();
    await store.subscribe(record.run.run_id, listener);
    await store.close();
    expect(vi.getTimerCount()).toBe(0);

    await vi.advanceTimersByTimeAsync(20_000);
    expect(listener).not.toHaveBeenCalled();
    expect(await store.getRun(record.run.run_id)).toBeUndefined();
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it("forgets heartbeats when their lease runs out", async () => {
    const store = new MemoryStore();
    await store.heartbeat("instance-a", 30_000);
    await vi.advanceTimersByTimeAsync(29_000);
    expect(await store.isAlive("instance-a")).toBe(true);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await store.isAlive("instance-a")).toBe(false);
    await store.close();
  });
});

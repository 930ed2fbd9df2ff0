import { randomUUID } from "node:crypto";
import type { Event, RunStatus } from "@acp/core";
import { historyItem, newRun, writeHistory } from "@acp/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../src/index.ts";

const stores: MemoryStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

function openStore(maxRuns: number): MemoryStore {
  const store = new MemoryStore({ maxRuns });
  stores.push(store);
  return store;
}

const hello: Event = { type: "generic", generic: { hello: "world" } };

/** Creates one run per status, in order, and returns their ids. */
async function createRuns(store: MemoryStore, statuses: RunStatus[]): Promise<string[]> {
  const ids: string[] = [];
  for (const status of statuses) {
    const record = newRun(status);
    expect(await store.createRun(record, [hello])).toBe(true);
    ids.push(record.run.run_id);
  }
  return ids;
}

async function kept(store: MemoryStore, ids: string[]): Promise<boolean[]> {
  return Promise.all(ids.map(async (id) => (await store.getRun(id)) !== undefined));
}

describe("MemoryStore size limit", () => {
  it("keeps at most maxRuns runs, dropping the least recently written first", async () => {
    const store = openStore(3);
    const ids = await createRuns(store, ["in-progress", "in-progress", "in-progress", "in-progress"]);
    expect(await kept(store, ids)).toEqual([false, true, true, true]);
  });

  it("drops finished runs before running ones, however recent", async () => {
    const store = openStore(3);
    const [running, finished, alsoRunning] = await createRuns(store, ["in-progress", "completed", "awaiting"]);
    const [newest] = await createRuns(store, ["created"]);
    expect(await kept(store, [running!, finished!, alsoRunning!, newest!])).toEqual([true, false, true, true]);
  });

  it("counts a write as use: an updated run outlives older untouched ones", async () => {
    const store = openStore(2);
    const [first, second] = await createRuns(store, ["in-progress", "in-progress"]);
    const current = await store.getRun(first!);
    await store.updateRun(first!, 1, { ...current!, run: { ...current!.run, status: "awaiting" } }, []);
    await createRuns(store, ["created"]);
    expect(await kept(store, [first!, second!])).toEqual([true, false]);
  });

  it("moves a run that finishes to the finished runs, dropped first", async () => {
    const store = openStore(2);
    const [first, second] = await createRuns(store, ["in-progress", "in-progress"]);
    const current = await store.getRun(second!);
    await store.updateRun(second!, 1, { ...current!, run: { ...current!.run, status: "completed" } }, []);
    await createRuns(store, ["created"]);
    expect(await kept(store, [first!, second!])).toEqual([true, false]);
  });

  it("forgets a dropped run entirely and wakes its subscribers", async () => {
    const store = openStore(1);
    const [dropped] = await createRuns(store, ["in-progress"]);
    let calls = 0;
    const unsubscribe = await store.subscribe(dropped!, () => calls++);
    await createRuns(store, ["in-progress"]);
    expect(calls).toBe(1);
    expect(await store.readEvents(dropped!, 0)).toEqual([]);
    expect(await store.appendEvents(dropped!, [hello])).toBeNull();
    expect(await store.listActiveRuns()).not.toContain(dropped);
    await unsubscribe();
  });
});

describe("MemoryStore session limit", () => {
  it("keeps at most maxSessions sessions, dropping the least recently written with their items", async () => {
    const store = new MemoryStore({ maxSessions: 2 });
    stores.push(store);
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const first = historyItem("a1");
    await writeHistory(store, a, [first]);
    await writeHistory(store, b, [historyItem("b1")]);
    // Writing to a again makes b the least recently written.
    await writeHistory(store, a, [historyItem("a2")]);
    await writeHistory(store, c, [historyItem("c1")]);
    expect(await store.getHistory(b)).toBeUndefined();
    expect((await store.getHistory(a))?.length).toBe(2);
    expect((await store.getHistory(c))?.length).toBe(1);
    expect(await store.getHistoryItem(first.id)).toEqual(first);
    // The session dropped for size takes its items along.
    await writeHistory(store, randomUUID(), [historyItem("d1")]);
    expect(await store.getHistoryItem(first.id)).toBeUndefined();
  });
});

describe("MemoryStore options", () => {
  it.each([0, -1, 2.5])("refuses maxSessions %s", (maxSessions) => {
    expect(() => new MemoryStore({ maxSessions })).toThrow(/\[store-memory\] maxSessions/);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses maxRuns %s", (maxRuns) => {
    expect(() => new MemoryStore({ maxRuns })).toThrow(/\[store-memory\] maxRuns/);
  });

  it.each([0, -5, Number.POSITIVE_INFINITY, Number.NaN])("refuses ttlMs %s", (ttlMs) => {
    expect(() => new MemoryStore({ ttlMs })).toThrow(/\[store-memory\] ttlMs/);
  });
});

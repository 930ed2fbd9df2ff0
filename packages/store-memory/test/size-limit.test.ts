import { randomUUID } from "node:crypto";
import { type Event, type RunStatus, StoreError, StoreRefusedError } from "@acp/core";
import { historyItem, newRun, writeHistory } from "@acp/core/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
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
  it("drops the least recently written finished run to make room", async () => {
    const store = openStore(3);
    const ids = await createRuns(store, ["completed", "failed", "in-progress", "created"]);
    expect(await kept(store, ids)).toEqual([false, true, true, true]);
  });

  it("drops finished runs before running ones, however recent", async () => {
    const store = openStore(3);
    const [running, finished, alsoRunning] = await createRuns(store, ["in-progress", "completed", "awaiting"]);
    const [newest] = await createRuns(store, ["created"]);
    expect(await kept(store, [running!, finished!, alsoRunning!, newest!])).toEqual([true, false, true, true]);
  });

  it("never drops a run that has not ended: full of them, it refuses new runs with a StoreError, logged once", async () => {
    const store = openStore(2);
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const live = await createRuns(store, ["in-progress", "awaiting"]);
      for (let attempt = 0; attempt < 3; attempt++) {
        const refused = store.createRun(newRun("created"), [hello]);
        await expect(refused).rejects.toBeInstanceOf(StoreError);
        await expect(refused).rejects.toThrow(
          /\[store-memory\] createRun refused: 2 runs have not ended \(maxRuns 2\)/,
        );
      }
      expect(await kept(store, live)).toEqual([true, true]);
      expect(logged).toHaveBeenCalledTimes(1);

      // Once one ends, a new run takes its place; a later burst is logged again.
      const current = await store.getRun(live[0]!);
      await store.updateRun(live[0]!, 1, { ...current!, run: { ...current!.run, status: "completed" } }, []);
      const [next] = await createRuns(store, ["created"]);
      expect(await kept(store, [live[0]!, live[1]!, next!])).toEqual([false, true, true]);
      await expect(store.createRun(newRun("created"), [])).rejects.toBeInstanceOf(StoreError);
      expect(logged).toHaveBeenCalledTimes(2);
    } finally {
      logged.mockRestore();
    }
  });

  it("counts a write as use: an updated finished run outlives older untouched ones", async () => {
    const store = openStore(2);
    const [first, second] = await createRuns(store, ["completed", "completed"]);
    const current = await store.getRun(first!);
    await store.updateRun(first!, 1, { ...current!, run: { ...current!.run, error: null } }, []);
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
    const [dropped] = await createRuns(store, ["completed"]);
    let calls = 0;
    const unsubscribe = await store.subscribe(dropped!, () => calls++);
    await createRuns(store, ["in-progress"]);
    expect(calls).toBe(1);
    expect(await store.getRun(dropped!)).toBeUndefined();
    expect(await store.readEvents(dropped!, 0)).toEqual([]);
    expect(await store.listOrphanedRuns()).not.toContain(dropped);
    await unsubscribe();
  });
});

describe("MemoryStore values it cannot copy", () => {
  it("refuses them with a StoreRefusedError and writes nothing", async () => {
    const store = openStore(10);
    const record = newRun("in-progress");
    const uncopyable: Event = { type: "generic", generic: { count: 1n } as unknown as Record<string, unknown> };
    await expect(store.createRun(record, [uncopyable])).rejects.toBeInstanceOf(StoreRefusedError);
    expect(await store.getRun(record.run.run_id)).toBeUndefined();
    await store.createRun(record, [hello]);
    await expect(store.appendEvents(record.run.run_id, [uncopyable])).rejects.toThrow(
      /\[acp\] \[store-memory\] appendEvents refused the value: Do not know how to serialize a BigInt/,
    );
    const next = { ...record, run: { ...record.run, status: "completed" as const } };
    await expect(store.updateRun(record.run.run_id, 1, next, [uncopyable])).rejects.toBeInstanceOf(StoreRefusedError);
    expect((await store.getRun(record.run.run_id))?.version).toBe(1);
    expect((await store.readEvents(record.run.run_id, 0)).length).toBe(1);
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

/**
 * The orphan sweep: one at a time per instance, a malformed record skipped rather than stopping
 * it, the owner's lease checked right before each takeover, and every instance sweeping from its
 * first request, even one that never creates a run.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp, type Run, Runtime, type Store, type StoredRun } from "../src/index.ts";
import { echo } from "./support/agents.ts";
import { eventually } from "./support/app.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Stores a run that `owner` (an instance with no heartbeat) holds in progress. */
async function orphan(store: Store, owner: string): Promise<string> {
  const runId = randomUUID();
  const run: Run = {
    run_id: runId,
    agent_name: "echo",
    session_id: randomUUID(),
    status: "in-progress",
    await_request: null,
    output: [],
    error: null,
    created_at: new Date().toISOString(),
  };
  const record: StoredRun = { run, version: 1, owner, resume: null };
  expect(await store.createRun(record, [{ type: "run.in-progress", run }])).toBe(true);
  return runId;
}

/** A store over `inner` whose methods can be replaced one by one. */
function overridden(inner: Store, methods: Partial<Store>): Store {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const own = (methods as Record<string | symbol, unknown>)[property];
      if (own !== undefined) return own;
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("the orphan sweep", () => {
  it("runs one sweep at a time", async () => {
    const inner = new MemoryStore();
    let lists = 0;
    const store = overridden(inner, {
      async listOrphanedRuns(limit?: number) {
        lists += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
        return inner.listOrphanedRuns(limit);
      },
    });
    await orphan(inner, randomUUID());
    const runtime = new Runtime({ store, agents: [echo] });
    const ended = await Promise.all([runtime.sweepOrphans(), runtime.sweepOrphans(), runtime.sweepOrphans()]);
    expect(lists).toBe(1);
    expect(ended).toEqual([1, 1, 1]);
    await runtime.shutdown({ deadlineMs: 10 });
  });

  it("logs and skips a malformed record, and goes on with the rest", async () => {
    const inner = new MemoryStore();
    const dead = randomUUID();
    const good = await orphan(inner, dead);
    const bad = randomUUID();
    const store = overridden(inner, {
      listOrphanedRuns: async () => [bad, good],
      getRun: async (runId: string) =>
        runId === bad ? ({ version: 1, owner: dead, run: null } as unknown as StoredRun) : inner.getRun(runId),
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const runtime = new Runtime({ store, agents: [echo] });
    expect(await runtime.sweepOrphans()).toBe(1);
    expect((await inner.getRun(good))?.run.status).toBe("failed");
    expect(errors.mock.calls.map(String).join("\n")).toContain(bad);
    await runtime.shutdown({ deadlineMs: 10 });
  });

  it("checks the owner's lease right before each takeover", async () => {
    const inner = new MemoryStore();
    const owner = randomUUID();
    const first = await orphan(inner, owner);
    const second = await orphan(inner, owner);
    let takeovers = 0;
    const store = overridden(inner, {
      listOrphanedRuns: async () => [first, second],
      async updateRun(...args: Parameters<Store["updateRun"]>) {
        const result = await inner.updateRun(...args);
        takeovers += 1;
        // The owner comes back between the two takeovers.
        if (takeovers === 1) await inner.heartbeat(owner, 60_000);
        return result;
      },
    });
    const runtime = new Runtime({ store, agents: [echo] });
    expect(await runtime.sweepOrphans()).toBe(1);
    expect((await inner.getRun(first))?.run.status).toBe("failed");
    expect((await inner.getRun(second))?.run.status).toBe("in-progress");
    await runtime.shutdown({ deadlineMs: 10 });
  });

  it("runs on an instance that has only answered reads: it fails a dead instance's run within ~1.5 leases", async () => {
    const store = new MemoryStore();
    const runId = await orphan(store, randomUUID());
    const leaseMs = 600;
    const reader = createApp([echo], { store, leaseMs });
    try {
      const asked = Date.now();
      expect((await reader.request("/agents")).status).toBe(200);
      await eventually(async () => (await store.getRun(runId))?.run.status === "failed", 3 * leaseMs);
      // A lease and a half, and room for a busy machine.
      expect(Date.now() - asked).toBeLessThan(1.5 * leaseMs + 400);
    } finally {
      await reader.shutdown({ deadlineMs: 10 });
    }
  });
});

/**
 * The Runtime over an in-process memory store: runs created, awaited, resumed and cancelled
 * through its public API, and, with two instances over one store, the orphan sweep that ends the
 * runs of an instance whose lease ran out.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { echo, testAgents } from "../../test/support/agents.ts";
import { eventually } from "../../test/support/app.ts";
import { controlledStore } from "../../test/support/controlled-store.ts";
import { ACPError } from "../errors.ts";
import {
  type AwaitResume,
  type RunCreateRequest,
  RunCreateRequestSchema,
  type RunMode,
  RunResumeRequestSchema,
} from "../models.ts";
import { type Store, type StoredRun, StoreError, StoreRefusedError } from "../store.ts";
import { Runtime, type RuntimeOptions } from "./runtime.ts";

const runtimes: Runtime[] = [];

beforeEach(() => {
  // Heartbeat failures (and recoveries) and cut-off executors log; the assertions say what matters.
  vi.spyOn(console, "error").mockImplementation(() => {});
  vi.spyOn(console, "log").mockImplementation(() => {});
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.shutdown({ deadlineMs: 0 })));
  vi.restoreAllMocks();
});

function runtimeOver(store: Store, options: Partial<RuntimeOptions> = {}): Runtime {
  const runtime = new Runtime({ store, agents: testAgents, ...options });
  runtimes.push(runtime);
  return runtime;
}

/** A run request as the HTTP layer hands it over: validated, defaults filled in. */
function request(
  agentName: string,
  text: string,
  mode: RunMode = "sync",
  fields: Record<string, unknown> = {},
): RunCreateRequest {
  return v.parse(RunCreateRequestSchema, {
    agent_name: agentName,
    input: [{ role: "user", parts: [{ content: text }] }],
    mode,
    ...fields,
  });
}

/** A resume as the HTTP layer hands it over. */
function resumeWith(text: string): AwaitResume {
  return v.parse(RunResumeRequestSchema, {
    await_resume: { type: "message", message: { role: "user", parts: [{ content: text }] } },
  }).await_resume;
}

async function rejection(promise: Promise<unknown>): Promise<ACPError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ACPError);
  return error as ACPError;
}

describe("Runtime", () => {
  it("names itself in the errors of its options", () => {
    const store = new MemoryStore();
    expect(() => new Runtime({ store, agents: [], leaseMs: 5 })).toThrow(
      "[acp] new Runtime(): leaseMs must be a number of milliseconds of at least 100, got 5",
    );
    expect(() => new Runtime({ store, agents: [], storeTimeoutMs: Number.NaN })).toThrow(
      /new Runtime\(\): storeTimeoutMs/,
    );
    expect(() => new Runtime({ store, agents: [echo, echo] })).toThrow(
      '[acp] new Runtime(): two agents are named "echo"',
    );
  });

  it("runs a created run to its end; whenSettled hands over the final record", async () => {
    const runtime = runtimeOver(new MemoryStore());
    const created = await runtime.createRun(request("echo", "hello"));
    expect(created.run.status).toBe("created");
    expect(created.owner).toBe(runtime.instanceId);
    const settled = await runtime.whenSettled(created.run.run_id, created.version);
    expect(settled.run.status).toBe("completed");
    expect(settled.run.output[0]!.parts[0]!.content).toBe("hello");
    expect(await runtime.getRun(created.run.run_id)).toEqual(settled);
    await eventually(() => runtime.localRuns === 0);
  });

  it("refuses an unknown agent, an input over the limits and, while draining, any run", async () => {
    const runtime = runtimeOver(new MemoryStore(), { limits: { maxInputMessages: 1 } });
    expect((await rejection(runtime.createRun(request("nobody", "x")))).status).toBe(404);
    const twoMessages = v.parse(RunCreateRequestSchema, {
      agent_name: "echo",
      input: [
        { role: "user", parts: [{ content: "a" }] },
        { role: "user", parts: [{ content: "b" }] },
      ],
    });
    expect((await rejection(runtime.createRun(twoMessages))).message).toContain("limit of 1 messages");
    await runtime.shutdown({ deadlineMs: 0 });
    const draining = await rejection(runtime.createRun(request("echo", "x")));
    expect({ status: draining.status, code: draining.code }).toEqual({ status: 503, code: "server_error" });
  });

  it("resumes an awaiting run with the client's message; a run that does not await cannot be resumed", async () => {
    const runtime = runtimeOver(new MemoryStore());
    const created = await runtime.createRun(request("approval", "the plan"));
    const awaiting = await runtime.whenSettled(created.run.run_id, 1);
    expect(awaiting.run.status).toBe("awaiting");
    const { record, seq } = await runtime.resume(created.run.run_id, resumeWith("yes"));
    expect(record.run.status).toBe("in-progress");
    const events = await runtime.store.readEvents(created.run.run_id, seq - 1);
    expect(events[0]).toMatchObject({ seq, event: { type: "run.in-progress" } });
    const done = await runtime.whenSettled(created.run.run_id, record.version);
    expect(done.run.output.at(-1)!.parts[0]!.content).toBe("Approved: the plan.");
    const again = await rejection(runtime.resume(created.run.run_id, resumeWith("yes")));
    expect(again.status).toBe(403);
    expect(again.message).toContain("is not awaiting (its status is completed)");
  });

  it("cancels a running run, idempotently; a finished run cannot be cancelled", async () => {
    const runtime = runtimeOver(new MemoryStore());
    const created = await runtime.createRun(request("slow", "ticks=1000 ms=10", "async"));
    const runId = created.run.run_id;
    expect((await runtime.cancel(runId)).run.status).toBe("cancelling");
    // A run of this instance hears its cancel at once: it may have ended before the second one.
    const again = await runtime.cancel(runId).then(
      (record) => record.run.status,
      (error: unknown) => (error as ACPError).message,
    );
    if (again !== "cancelling") expect(again).toMatch(/has already finished \(its status is cancelled\)/);
    const ended = await runtime.whenSettled(runId, 1);
    expect(ended.run.status).toBe("cancelled");
    const refused = await rejection(runtime.cancel(runId));
    expect(refused.status).toBe(403);
    expect((await rejection(runtime.getRun(crypto.randomUUID()))).status).toBe(404);
  });

  it("waits, through the store, for a run that another instance executes", async () => {
    const memory = new MemoryStore();
    const owner = runtimeOver(memory);
    const other = runtimeOver(memory);
    const created = await owner.createRun(request("slow", "ticks=3 ms=10", "async"));
    const settled = await other.whenSettled(created.run.run_id, 1);
    expect(settled.run.status).toBe("completed");
    expect(other.localRuns).toBe(0);
  });

  it("fails a run whose create timed out but landed later, since nobody executes it", async () => {
    const { store, control } = controlledStore();
    const runtime = runtimeOver(store, { storeTimeoutMs: 30 });
    await runtime.start();
    control.delayMs.createRun = 150;
    // An async run is stored before it starts (a sync one is stored by its first write).
    const error = await runtime.createRun(request("echo", "hi", "async")).catch((reason: unknown) => reason);
    expect((error as Error).message).toMatch(/store\.createRun\(\) did not answer within 30 ms/);
    const runId = (control.lastArgs.createRun![0] as StoredRun).run.run_id;
    const failed = await eventually(async () => {
      const record = await control.inner.getRun(runId);
      return record?.run.status === "failed" && record;
    });
    expect(failed.run.error).toEqual({
      code: "server_error",
      message: "The run could not be started: the store answered too late, and the client was told so",
    });
    expect(runtime.localRuns).toBe(0);
  });
});

describe("Runtime, a sync run", () => {
  it("is stored once, at its end, with its whole log and its session history", async () => {
    const { store, control } = controlledStore();
    const runtime = runtimeOver(store);
    await runtime.start();
    control.calls = {};
    const created = await runtime.createRun(request("echo", "hi"));
    const ended = await runtime.whenSettled(created.run.run_id, 1);
    expect(ended.run.status).toBe("completed");
    expect(control.calls).toEqual({ createRun: 1 });
    const events = await control.inner.readEvents(created.run.run_id, 0);
    expect(events.map((stored) => stored.event.type)).toEqual([
      "run.created",
      "run.in-progress",
      "message.created",
      "message.part",
      "message.completed",
      "run.completed",
    ]);
    expect((await control.inner.getHistory(ended.run.session_id!))?.map((item) => item.message.role)).toEqual([
      "user",
      "agent/echo",
    ]);
  });

  it("ends completed when its one write timed out but landed", async () => {
    const { store, control } = controlledStore();
    const runtime = runtimeOver(store, { storeTimeoutMs: 30, outageMs: 5_000 });
    await runtime.start();
    control.delayMs.createRun = 150;
    const created = await runtime.createRun(request("echo", "hi"));
    const settled = runtime.whenSettled(created.run.run_id, 1);
    // Only the first call is slow: the retry finds the run it wrote.
    await eventually(() => control.calls.createRun === 1);
    delete control.delayMs.createRun;
    const ended = await settled;
    expect(ended.run.status).toBe("completed");
    expect((await control.inner.getRun(created.run.run_id))?.run.status).toBe("completed");
    expect(await control.inner.getHistory(ended.run.session_id!)).toHaveLength(2);
  });

  it("retries its one write through an outage (its agent has acted), then is stored ended", async () => {
    const { store, control } = controlledStore();
    const runtime = runtimeOver(store, { outageMs: 0 });
    await runtime.start();
    control.failing = new Set(["createRun"]);
    const created = await runtime.createRun(request("echo", "hi"));
    const settled = runtime.whenSettled(created.run.run_id, 1);
    await eventually(() => (control.calls.createRun ?? 0) >= 2);
    control.failing = new Set();
    expect((await settled)?.run.status).toBe("completed");
    expect((await control.inner.getRun(created.run.run_id))?.run.status).toBe("completed");
    await eventually(() => runtime.localRuns === 0);
  });

  it("is stored before its agent starts while the store looks down: the client gets the store's error first", async () => {
    const { store, control } = controlledStore();
    const runtime = runtimeOver(store, { outageMs: 0 });
    await runtime.start();
    control.failing = "all";
    // Any call that fails as an outage makes the store look down.
    await expect(runtime.getRun(randomUUID())).rejects.toThrow();
    const calls = control.calls.createRun ?? 0;
    await expect(runtime.createRun(request("echo", "hi"))).rejects.toBeInstanceOf(StoreError);
    expect(control.calls.createRun).toBe(calls + 1);
    expect(runtime.localRuns).toBe(0);
    // The first run once the store is back is stored first; its success shows the store is up.
    control.failing = new Set();
    const again = await runtime.createRun(request("echo", "again"));
    expect((await runtime.whenSettled(again.run.run_id, 1))?.run.status).toBe("completed");
    // Then sync runs are stored once, at their end: one createRun, no updateRun.
    const creates = control.calls.createRun ?? 0;
    const updates = control.calls.updateRun ?? 0;
    const third = await runtime.createRun(request("echo", "third"));
    expect((await runtime.whenSettled(third.run.run_id, 1))?.run.status).toBe("completed");
    expect(control.calls.createRun).toBe(creates + 1);
    expect(control.calls.updateRun ?? 0).toBe(updates);
  });
});

describe("Runtime orphan sweep", () => {
  it("fails, at its next sweep, a run of its own whose end it could not write (no other instance would)", async () => {
    // A refused write is not retried: the executor gives the run's end up at once.
    let refusing = false;
    const store = new MemoryStore();
    const updateRun = store.updateRun.bind(store);
    store.updateRun = (...args) =>
      refusing ? Promise.reject(new StoreRefusedError("test", "store.updateRun() refused")) : updateRun(...args);
    const runtime = runtimeOver(store);
    await runtime.start();
    const created = await runtime.createRun(request("slow", "ticks=3 ms=20", "async"));
    const runId = created.run.run_id;
    refusing = true;
    await eventually(() => runtime.localRuns === 0);
    refusing = false;
    expect((await store.getRun(runId))?.run.status).toBe("in-progress");
    expect(await runtime.sweepOrphans()).toBe(1);
    expect((await store.getRun(runId))?.run).toMatchObject({
      status: "failed",
      error: {
        code: "server_error",
        message: "The run's end could not be recorded (the store kept failing); the run cannot continue",
      },
    });
    // Done with: the next sweep has nothing left to end.
    expect(await runtime.sweepOrphans()).toBe(0);
  });

  /** Two instances over one memory store; the first reaches it through a switch that can cut it off. */
  async function twoInstances(): Promise<{
    first: Runtime;
    second: Runtime;
    cutOff: () => void;
    reconnect: () => void;
  }> {
    const memory = new MemoryStore();
    const { store, control } = controlledStore(memory);
    // A lease far above a timer's lateness on a busy machine: only a cut-off instance loses it.
    const options = { leaseMs: 300, storeTimeoutMs: 100, outageMs: 100 };
    const first = runtimeOver(store, options);
    const second = runtimeOver(memory, options);
    await Promise.all([first.start(), second.start()]);
    return {
      first,
      second,
      cutOff: () => {
        control.failing = "all";
      },
      reconnect: () => {
        control.failing = new Set();
      },
    };
  }

  it("leaves the runs of a live instance alone", async () => {
    const { first, second } = await twoInstances();
    const created = await first.createRun(request("slow", "ticks=1000 ms=10", "async"));
    await new Promise((resolve) => setTimeout(resolve, 700)); // past two leases: the owner renewed its own
    expect(await second.sweepOrphans()).toBe(0);
    expect((await second.getRun(created.run.run_id)).run.status).toBe("in-progress");
  });

  it("fails the running runs of an instance whose lease ran out, by its own timer", async () => {
    const { first, second, cutOff, reconnect } = await twoInstances();
    const created = await first.createRun(request("slow", "ticks=1000 ms=10", "async"));
    cutOff();
    const ended = await second.whenSettled(created.run.run_id, 2);
    expect(ended.run.status).toBe("failed");
    expect(ended.run.error).toEqual({
      code: "server_error",
      message: "The server instance running this run was lost (its lease ran out); the run cannot continue",
    });
    const events = await second.store.readEvents(created.run.run_id, 0);
    expect(events.at(-1)!.event.type).toBe("run.failed");
    reconnect();
    // The first instance, back, finds its run ended and writes nothing after the end.
    await eventually(() => first.localRuns === 0);
    expect((await second.store.readEvents(created.run.run_id, 0)).at(-1)!.event.type).toBe("run.failed");
  });

  it("cancels, rather than fails, an orphan that was being cancelled; one sweep ends each orphan once", async () => {
    const { first, second, cutOff, reconnect } = await twoInstances();
    const cancelled = await first.createRun(request("slow", "ticks=1000 ms=10", "async"));
    const awaiting = await first.createRun(request("approval", "it", "async"));
    await first.whenSettled(awaiting.run.run_id, 1);
    cutOff();
    await second.cancel(cancelled.run.run_id);
    const ended = await second.whenSettled(cancelled.run.run_id, 3);
    expect(ended.run).toMatchObject({ status: "cancelled", error: null });
    const lost = await second.whenSettled(awaiting.run.run_id, 3);
    expect(lost.run).toMatchObject({ status: "failed", await_request: null });
    // The timer's sweep that ended them may still be returning: a call now would share its count.
    await new Promise((resolve) => setImmediate(resolve));
    expect(await second.sweepOrphans()).toBe(0);
    reconnect();
  });
});

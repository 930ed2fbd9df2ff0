/**
 * The output of a run, through the Runtime over an in-process memory store: a run that is still
 * streaming a message shows it as the reference (acp-sdk 1.0.3) does, with the parts yielded so
 * far; reading a running run again reads only the events since; and what a run costs the store
 * per event does not grow with the output produced so far.
 */
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { eventually } from "../../test/support/app.ts";
import { controlledStore } from "../../test/support/controlled-store.ts";
import { interceptStore } from "../../test/support/intercept-store.ts";
import { type Agent, agent } from "../agent.ts";
import { type Message, type RunCreateRequest, RunCreateRequestSchema, type RunMode } from "../models.ts";
import type { Store } from "../store.ts";
import { outputFromLog, RunOutputs } from "./output.ts";
import { Runtime } from "./runtime.ts";

const runtimes: Runtime[] = [];

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.shutdown({ deadlineMs: 0 })));
  vi.restoreAllMocks();
});

function runtimeOver(store: Store, agents: Agent[]): Runtime {
  const runtime = new Runtime({ store, agents });
  runtimes.push(runtime);
  return runtime;
}

function request(agentName: string, text: string, mode: RunMode): RunCreateRequest {
  return v.parse(RunCreateRequestSchema, {
    agent_name: agentName,
    input: [{ role: "user", parts: [{ content: text }] }],
    mode,
  });
}

/** Streams `n` tokens (from the input), `gate` deciding when each one comes. */
let gate: () => Promise<void> = () => Promise.resolve();
const streaming = agent({ name: "streaming" }, async function* (input) {
  const n = Number(input[0]!.parts[0]!.content);
  for (let i = 0; i < n; i++) {
    await gate();
    yield `t${i} `;
  }
});

/** Two whole messages, then a part of a third, then waits until cancelled. */
const stalls = agent({ name: "stalls" }, async function* (_input, ctx) {
  yield { parts: [{ content: "first" }] };
  yield { parts: [{ content: "second" }] };
  yield "third, open";
  await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
});

/** Yields `n` whole messages of 1 KiB each. */
const verbose = agent({ name: "verbose" }, async function* (input) {
  const n = Number(input[0]!.parts[0]!.content);
  for (let i = 0; i < n; i++) yield { parts: [{ content: `${i}`.padEnd(1024, ".") }] };
});

describe("output of a running run", () => {
  it("shows the message being streamed, with the parts yielded so far", async () => {
    const runtime = runtimeOver(new MemoryStore(), [streaming]);
    let release: (() => void) | undefined;
    let yielded = 0;
    // Tokens 0 and 1 come at once, then the agent waits.
    gate = () => (yielded++ < 2 ? Promise.resolve() : new Promise<void>((resolve) => (release = resolve)));
    const created = await runtime.createRun(request("streaming", "3", "async"));
    const runId = created.run.run_id;
    const running = await eventually(async () => {
      const record = await runtime.getRun(runId);
      return record.run.output[0]?.parts.length === 2 && record;
    });
    expect(running.run.status).toBe("in-progress");
    const [open] = running.run.output;
    expect(open!.role).toBe("agent/streaming");
    expect(open!.parts.map((part) => part.content)).toEqual(["t0 ", "t1 "]);
    expect(open!.completed_at).toBeUndefined();
    release!();
    const ended = await runtime.whenSettled(runId, 1);
    expect(ended.run.output).toHaveLength(1);
    expect(ended.run.output[0]!.parts.map((part) => part.content)).toEqual(["t0 ", "t1 ", "t2 "]);
    expect(ended.run.output[0]!.completed_at).toEqual(expect.any(String));
    expect((await runtime.getRun(runId)).run).toEqual(ended.run);
  });

  it("shows the messages completed since the last transition, and the same final output as the record", async () => {
    const runtime = runtimeOver(new MemoryStore(), [verbose]);
    const created = await runtime.createRun(request("verbose", "3", "async"));
    const ended = await runtime.whenSettled(created.run.run_id, 1);
    expect(ended.run.output).toHaveLength(3);
    const events = await runtime.store.readEvents(created.run.run_id, 0);
    const completed: Message[] = events.flatMap((stored) =>
      stored.event.type === "message.completed" ? [stored.event.message] : [],
    );
    expect(completed).toEqual(ended.run.output);
  });
});

/** `readEvents` calls made through the returned store: the seq each one read after. */
function readsOf(inner: Store): { store: Store; reads: number[] } {
  const reads: number[] = [];
  const store = interceptStore(inner, (method, args, call) => {
    if (method === "readEvents") reads.push(args[1] as number);
    return call();
  });
  return { store, reads };
}

/** 2,500 parts of one message; then, once `goOn` is called, a whole message and a part of the next; then waits. */
let goOn: () => void = () => {};
const phased = agent({ name: "phased" }, async function* (_input, ctx) {
  for (let i = 0; i < 2500; i++) yield `t${i} `;
  await new Promise<void>((resolve) => (goOn = resolve));
  yield { parts: [{ content: "whole" }] };
  yield "tail, open";
  await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
});

describe("a running run read again", () => {
  it("reads only the events since the last read, and tells the same output as its whole log", async () => {
    const memory = new MemoryStore();
    const { store, reads } = readsOf(memory);
    const runtime = runtimeOver(store, [phased]);
    const runId = (await runtime.createRun(request("phased", "", "async"))).run.run_id;
    await eventually(async () => (await memory.readEvents(runId, 0)).length >= 2502);
    const lastSeq = (): Promise<number> => memory.readEvents(runId, 0).then((events) => events.at(-1)!.seq);

    reads.length = 0;
    const first = await runtime.getRun(runId);
    expect(first.run.output[0]!.parts).toHaveLength(2500);
    // The whole log, a page of 1,000 events at a time.
    expect(reads).toEqual([0, 1000, 2000]);
    expect(first.run.output).toEqual(await outputFromLog(memory, runId));

    reads.length = 0;
    const again = await runtime.getRun(runId);
    expect(reads).toEqual([await lastSeq()]);
    expect(again.run.output).toEqual(first.run.output);

    const before = await lastSeq();
    goOn();
    await eventually(async () => (await outputFromLog(memory, runId)).at(-1)?.parts[0]?.content === "tail, open");
    reads.length = 0;
    const later = await runtime.getRun(runId);
    expect(reads).toEqual([before]);
    expect(later.run.output).toEqual(await outputFromLog(memory, runId));
    expect(later.run.output.map((message) => message.parts.length)).toEqual([2500, 1, 1]);
    // The parts of a message already returned are not changed by a later read.
    expect(first.run.output[0]!.completed_at).toBeUndefined();
  });

  it("gives every one of concurrent reads the whole output, once", async () => {
    const memory = new MemoryStore();
    const runtime = runtimeOver(memory, [phased]);
    const runId = (await runtime.createRun(request("phased", "", "async"))).run.run_id;
    await eventually(async () => (await memory.readEvents(runId, 0)).length >= 2502);
    goOn();
    await eventually(async () => (await outputFromLog(memory, runId)).at(-1)?.parts[0]?.content === "tail, open");
    const expected = await outputFromLog(memory, runId);
    const outputs = await Promise.all(Array.from({ length: 5 }, () => runtime.getRun(runId)));
    for (const read of outputs) expect(read.run.output).toEqual(expected);
    expect((await runtime.getRun(runId)).run.output).toEqual(expected);
  });

  it("keeps at most its byte budget, the least recently read going first, and starts over for another run of the id", async () => {
    const memory = new MemoryStore();
    const { store, reads } = readsOf(memory);
    const runtime = runtimeOver(memory, [phased, stalls]);
    const big = (await runtime.createRun(request("phased", "", "async"))).run;
    const small = (await runtime.createRun(request("stalls", "", "async"))).run;
    await eventually(async () => (await memory.readEvents(big.run_id, 0)).length >= 2502);
    await eventually(async () => (await outputFromLog(memory, small.run_id)).length === 3);
    // Room for the small run's output, not for the big one's 2,500 parts.
    const outputs = new RunOutputs(store, 4096);
    await outputs.read(small);
    await outputs.read(big);
    expect(outputs.bytes).toBeGreaterThan(0);
    expect(outputs.bytes).toBeLessThanOrEqual(4096);
    reads.length = 0;
    await outputs.read(big);
    expect(reads[0]).toBe(0);
    reads.length = 0;
    expect(await outputs.read(small)).toEqual(await outputFromLog(memory, small.run_id));
    expect(reads).toHaveLength(1);
    expect(reads[0]).toBeGreaterThan(0);
    // Another run stored under the same id (once the first expired) is read from its start.
    reads.length = 0;
    await outputs.read({ ...small, created_at: "2030-01-01T00:00:00.000Z" });
    expect(reads[0]).toBe(0);
    outputs.forget(small.run_id);
    expect(outputs.bytes).toBe(0);
  });
});

/** Bytes of JSON each write method of `inner` was given, call by call. */
function countingStore(inner: Store): { store: Store; writes: { method: string; bytes: number }[] } {
  const writes: { method: string; bytes: number }[] = [];
  const store = interceptStore(inner, (method, args, call) => {
    if (method === "updateRun" || method === "appendEvents" || method === "createRun")
      writes.push({ method, bytes: JSON.stringify(args.slice(1, 4)).length });
    return call();
  });
  return { store, writes };
}

describe("output at a run's end", () => {
  const contents = (messages: Message[]): string[] => messages.map((message) => message.parts[0]!.content ?? "");

  it("a cancel answers with the output so far; the cancelled run keeps it, the open message closed", async () => {
    const runtime = runtimeOver(new MemoryStore(), [stalls]);
    const created = await runtime.createRun(request("stalls", "", "async"));
    const runId = created.run.run_id;
    await eventually(async () => (await runtime.getRun(runId)).run.output.length === 3);
    const cancelling = await runtime.cancel(runId);
    expect(cancelling.run.status).toBe("cancelling");
    expect(contents(cancelling.run.output)).toEqual(["first", "second", "third, open"]);
    const ended = await runtime.whenSettled(runId, 1);
    expect(ended.run.status).toBe("cancelled");
    expect(contents(ended.run.output)).toEqual(["first", "second", "third, open"]);
    expect(ended.run.output.every((message) => message.completed_at !== undefined)).toBe(true);
  });

  it("an orphan keeps the messages its lost instance completed", async () => {
    const memory = new MemoryStore();
    const { store, control } = controlledStore(memory);
    const options = { leaseMs: 300, storeTimeoutMs: 100, outageMs: 100 };
    const first = new Runtime({ store, agents: [stalls], ...options });
    const second = new Runtime({ store: memory, agents: [stalls], ...options });
    runtimes.push(first, second);
    await Promise.all([first.start(), second.start()]);
    const created = await first.createRun(request("stalls", "", "async"));
    const runId = created.run.run_id;
    await eventually(async () => (await second.getRun(runId)).run.output.length === 3);
    control.failing = "all";
    const ended = await second.whenSettled(runId, 2);
    expect(ended.run.status).toBe("failed");
    // As before: the completed messages; the one it was streaming never completed.
    expect(contents(ended.run.output)).toEqual(["first", "second"]);
    control.failing = new Set();
  });
});

describe("store cost per event", () => {
  for (const mode of ["async", "sync"] as const) {
    it(`does not grow with the output produced so far (${mode})`, async () => {
      const small = countingStore(new MemoryStore());
      const large = countingStore(new MemoryStore());
      for (const [counting, n] of [
        [small, 10],
        [large, 200],
      ] as const) {
        const runtime = runtimeOver(counting.store, [verbose]);
        const created = await runtime.createRun(request("verbose", `${n}`, mode));
        const ended = await runtime.whenSettled(created.run.run_id, 1);
        expect(ended.run.output).toHaveLength(n);
      }
      // Bytes per message written before the final write (which holds the output once); a sync
      // run is stored once, at its end, so there its one write counts: its log and output once.
      const perMessage = (writes: { method: string; bytes: number }[], n: number): number => {
        const counted = mode === "sync" ? writes : writes.slice(0, -1);
        return counted.reduce((sum, write) => sum + write.bytes, 0) / n;
      };
      if (mode === "sync") expect(large.writes).toHaveLength(1);
      const smallCost = perMessage(small.writes, 10);
      const largeCost = perMessage(large.writes, 200);
      expect(largeCost).toBeGreaterThan(0);
      expect(largeCost).toBeLessThanOrEqual(smallCost * 1.5);
    });
  }
});

/**
 * The output of a run, through the Runtime over an in-process memory store: a run that is still
 * streaming a message shows it as the reference (acp-sdk 1.0.3) does, with the parts yielded so
 * far; and what a run costs the store per event does not grow with the output produced so far.
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

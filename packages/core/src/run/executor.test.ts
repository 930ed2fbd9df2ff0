/**
 * The RunExecutor over an in-process memory store: what a handler yields becomes events and
 * output, a run awaits and resumes, stops on a cancel, fails on a handler's error, on the event
 * limit, on a shutdown and on a long store outage, and steps aside when another writer ends it.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { approval, sleep } from "../../test/support/agents.ts";
import { eventually } from "../../test/support/app.ts";
import { controlledStore } from "../../test/support/controlled-store.ts";
import { interceptStore } from "../../test/support/intercept-store.ts";
import { type Agent, type AgentContext, agent } from "../agent.ts";
import { ACPError } from "../errors.ts";
import { type Event, MessageSchema, type Run } from "../models.ts";
import { SessionHistory } from "../session.ts";
import { type Store, type StoredRun, StoreRefusedError } from "../store.ts";
import { type ExecutorInit, RunExecutor } from "./executor.ts";
import { guardStore } from "./guarded-store.ts";

let errors: MockInstance<typeof console.error>;

beforeEach(() => {
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});

afterEach(() => {
  vi.restoreAllMocks();
});

interface Started {
  store: Store;
  executor: RunExecutor;
  runId: string;
  sessionId: string;
  /** Resolves when `execute()` does. */
  done: Promise<void>;
  /** The run's log as it stands. */
  events(): Promise<Event[]>;
  record(): Promise<StoredRun>;
}

/** Stores a run as the Runtime does (started, two events) and executes it. */
async function start(
  runAgent: Agent,
  options: {
    text?: string;
    store?: Store;
    unobserved?: boolean;
    maxEvents?: number;
    outageMs?: number;
    init?: Partial<ExecutorInit>;
  } = {},
): Promise<Started> {
  const { text = "hello", store = new MemoryStore(), unobserved = false, maxEvents, outageMs = 200, init } = options;
  const runId = randomUUID();
  const sessionId = randomUUID();
  const run: Run = {
    run_id: runId,
    agent_name: runAgent.manifest.name,
    session_id: sessionId,
    status: "created",
    await_request: null,
    output: [],
    error: null,
    created_at: new Date().toISOString(),
  };
  const started: Run = { ...run, status: "in-progress" };
  const record: StoredRun = { run: started, version: 1, owner: "this-instance", resume: null };
  const input = [v.parse(MessageSchema, { role: "user", parts: [{ content: text }] })];
  const history = new SessionHistory(store, sessionId);
  const executor = new RunExecutor({
    store,
    agent: runAgent,
    record,
    input,
    history,
    outageMs,
    maxEvents,
    unobserved,
    ...init,
  });
  if (!unobserved) await executor.listen();
  expect(
    await store.createRun(record, [
      { type: "run.created", run },
      { type: "run.in-progress", run: started },
    ]),
  ).toBe(true);
  return {
    store,
    executor,
    runId,
    sessionId,
    done: executor.execute(),
    events: async () => (await store.readEvents(runId, 0)).map((stored) => stored.event),
    record: async () => (await store.getRun(runId))!,
  };
}

/** Moves an awaiting run on with `text`, as Runtime.resume does. */
async function resume(started: Started, text: string): Promise<StoredRun> {
  const current = await started.record();
  const message = v.parse(MessageSchema, { role: "user", parts: [{ content: text }] });
  const run: Run = { ...current.run, status: "in-progress", await_request: null };
  const result = await started.store.updateRun(
    started.runId,
    current.version,
    { ...current, run, resume: { type: "message", message } },
    [{ type: "run.in-progress", run }],
  );
  if (!result.ok) throw new Error("resume lost its compare-and-set");
  return result.record;
}

/** Sets the run's status as another instance would (a cancel, a sweep). */
async function setStatus(started: Started, status: Run["status"]): Promise<void> {
  const current = await started.record();
  const run: Run = { ...current.run, status };
  const events: Event[] = status === "failed" ? [{ type: "run.failed", run }] : [];
  expect((await started.store.updateRun(started.runId, current.version, { ...current, run }, events)).ok).toBe(true);
}

const texts = (run: Run): string[][] => run.output.map((message) => message.parts.map((part) => part.content ?? ""));

/** Streams two parts, then a whole message, a generic event and an artifact. */
const mixed = agent({ name: "mixed" }, async function* mixedHandler() {
  yield "a";
  yield "b";
  yield { parts: [{ content: "whole" }] };
  yield { progress: 0.5 };
  yield { name: "report.md", content_type: "text/markdown", content: "# Report" };
});

describe("RunExecutor", () => {
  for (const unobserved of [false, true]) {
    it(`turns what a handler yields into events, output and session history${unobserved ? " (unobserved run)" : ""}`, async () => {
      const { store, control } = controlledStore();
      const started = await start(mixed, { store, unobserved });
      await started.done;
      const events = await started.events();
      expect(events.map((event) => event.type)).toEqual([
        "run.created",
        "run.in-progress",
        "message.created",
        "message.part",
        "message.part",
        "message.completed",
        "message.created",
        "message.part",
        "message.completed",
        "generic",
        "message.created",
        "message.part",
        "message.completed",
        "run.completed",
      ]);
      const record = await started.record();
      expect(record.run.status).toBe("completed");
      expect(texts(record.run)).toEqual([["a", "b"], ["whole"], ["# Report"]]);
      expect(record.run.output.every((message) => message.role === "agent/mixed")).toBe(true);
      expect(record.run.output[2]!.parts[0]).toMatchObject({ name: "report.md", content_type: "text/markdown" });
      expect(events.at(-1)).toEqual({ type: "run.completed", run: record.run });
      expect(events[9]).toEqual({ type: "generic", generic: { progress: 0.5 } });
      const history = await store.getHistory(started.sessionId);
      expect(history!.map((item) => item.message.parts.map((part) => part.content))).toEqual([
        ["hello"],
        ["a", "b"],
        ["whole"],
        ["# Report"],
      ]);
      // An unobserved run has nobody to tell: it never subscribes.
      expect(control.calls.subscribe ?? 0).toBe(unobserved ? 0 : 1);
    });
  }

  it("takes a handler that returns its output instead of yielding it", async () => {
    const answer = agent({ name: "answer" }, async () => ["one", { parts: [{ content: "two" }] }]);
    const started = await start(answer);
    await started.done;
    expect(texts((await started.record()).run)).toEqual([["one"], ["two"]]);
  });

  it("awaits: settles as awaiting, then goes on with the resume it is handed", async () => {
    for (const unobserved of [false, true]) {
      const started = await start(approval, { text: "the plan", unobserved });
      const awaiting = await started.executor.whenSettled(1);
      expect(awaiting!.run.status).toBe("awaiting");
      expect(awaiting!.run.await_request!.message.parts[0]!.content).toBe("Do you approve the plan?");
      // An unobserved run becomes visible when it awaits: what it streamed is in the record.
      expect(texts(awaiting!.run)).toEqual([["Planning the plan."]]);
      const resumed = await resume(started, "yes");
      const ended = await started.executor.whenSettled(resumed.version);
      expect(ended!.run.status).toBe("completed");
      expect(texts(ended!.run)).toEqual([["Planning the plan."], ["Approved: the plan."]]);
      await started.done;
      const types = (await started.events()).map((event) => event.type);
      expect(types.slice(types.indexOf("run.awaiting"))).toEqual([
        "run.awaiting",
        "run.in-progress",
        "message.created",
        "message.part",
        "message.completed",
        "run.completed",
      ]);
    }
  });

  it("stops the handler mid-stream on a cancel and ends the run cancelled, with nothing after", async () => {
    let signal: AbortSignal | undefined;
    let stopped = false;
    const endless = agent({ name: "endless" }, async function* endlessHandler(_input, ctx: AgentContext) {
      signal = ctx.signal;
      try {
        for (let i = 0; ; i++) {
          await sleep(2, ctx.signal);
          yield `${i} `;
        }
      } finally {
        stopped = true;
      }
    });
    const started = await start(endless);
    await eventually(async () => (await started.events()).filter((event) => event.type === "message.part").length >= 3);
    await setStatus(started, "cancelling");
    await started.done;
    const record = await started.record();
    expect(record.run.status).toBe("cancelled");
    expect(record.run.error).toBeNull();
    expect(signal!.aborted).toBe(true);
    expect(stopped).toBe(true);
    const events = await started.events();
    expect(events.at(-1)).toEqual({ type: "run.cancelled", run: record.run });
    // The streamed message is closed and kept.
    expect(events.at(-2)!.type).toBe("message.completed");
    expect(texts(record.run)[0]!.length).toBeGreaterThanOrEqual(3);
  });

  it("keeps nothing a handler yields after it was stopped in the same step", async () => {
    let stopNow: () => void = () => {};
    let go: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      go = resolve;
    });
    const hasty = agent({ name: "hasty" }, async function* hastyHandler() {
      await ready;
      yield "before";
      // Stopped while this step runs, before it yields: what it yields next is not the run's.
      stopNow();
      yield "after";
    });
    const started = await start(hasty);
    stopNow = () => started.executor.abort({ code: "server_error", message: "stopped" });
    go();
    await started.done;
    const record = await started.record();
    expect(record.run.status).toBe("failed");
    expect(record.run.error?.message).toBe("stopped");
    expect(texts(record.run)).toEqual([["before"]]);
  });

  it("ends a cancelled run even when its handler ignores the signal", async () => {
    const deaf = agent({ name: "deaf" }, async function* deafHandler() {
      yield "started";
      await new Promise(() => {});
    });
    const started = await start(deaf);
    await eventually(async () => (await started.events()).some((event) => event.type === "message.part"));
    await setStatus(started, "cancelling");
    await started.done;
    expect((await started.record()).run.status).toBe("cancelled");
  });

  it("fails the run with the ACPError its handler throws, as it is", async () => {
    const refusing = agent({ name: "refusing" }, async function* refusingHandler() {
      yield "looking";
      throw new ACPError({ code: "invalid_input", message: "no images, please", data: { accepted: ["text/plain"] } });
    });
    const started = await start(refusing);
    await started.done;
    const record = await started.record();
    expect(record.run.status).toBe("failed");
    expect(record.run.error).toEqual({
      code: "invalid_input",
      message: "no images, please",
      data: { accepted: ["text/plain"] },
    });
    expect(texts(record.run)).toEqual([["looking"]]);
    expect(errors).not.toHaveBeenCalled();
  });

  it("fails the run with a generic error when its handler throws anything else, and logs the original", async () => {
    const crashing = agent({ name: "crashing" }, async function* crashingHandler() {
      yield "working";
      throw new TypeError("cannot read properties of undefined (secret)");
    });
    const started = await start(crashing);
    await started.done;
    const record = await started.record();
    expect(record.run.error).toEqual({ code: "server_error", message: "The agent failed with an internal error" });
    expect(JSON.stringify(await started.events())).not.toContain("secret");
    expect(errors.mock.calls.flat().some((value) => value instanceof TypeError)).toBe(true);
  });

  it("fails a run whose output passes maxEvents, and stops pulling the handler", async () => {
    let pulled = 0;
    const chatty = agent({ name: "chatty" }, async function* chattyHandler() {
      for (;;) {
        pulled += 1;
        yield { n: pulled };
      }
    });
    const started = await start(chatty, { maxEvents: 10 });
    await started.done;
    const record = await started.record();
    expect(record.run.status).toBe("failed");
    expect(record.run.error).toEqual({ code: "server_error", message: "The run exceeded the limit of 10 events" });
    expect(pulled).toBe(11);
    expect((await started.events()).filter((event) => event.type === "generic")).toHaveLength(10);
  });

  it("fails the run with the server's error when the server aborts it (a shutdown)", async () => {
    const started = await start(
      agent({ name: "waiting" }, async function* waitingHandler(_input, ctx) {
        yield "started";
        await sleep(60_000, ctx.signal);
      }),
    );
    await eventually(async () => (await started.events()).some((event) => event.type === "message.part"));
    started.executor.abort({ code: "server_error", message: "shut down" });
    await started.done;
    const record = await started.record();
    expect(record.run).toMatchObject({ status: "failed", error: { code: "server_error", message: "shut down" } });
  });

  it("steps aside when another writer ends the run: no event after that end", async () => {
    const endless = agent({ name: "endless" }, async function* endlessHandler(_input, ctx) {
      for (;;) {
        await sleep(2, ctx.signal);
        yield "tick ";
      }
    });
    const started = await start(endless);
    await eventually(async () => (await started.events()).some((event) => event.type === "message.part"));
    await setStatus(started, "failed");
    await started.done;
    const events = await started.events();
    expect(events.at(-1)!.type).toBe("run.failed");
    expect((await started.record()).run.status).toBe("failed");
    expect(errors).not.toHaveBeenCalled();
  });

  it("fails the run when its events cannot be written for longer than outageMs", async () => {
    const { store, control } = controlledStore();
    control.failing = new Set(["appendEvents"]);
    const streaming = agent({ name: "streaming" }, async function* streamingHandler() {
      yield "a";
      // The part waits for an append of its own: no transition comes to carry it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      yield "b";
    });
    const blocked = await start(streaming, { store: guardStore(store, 1_000), outageMs: 150 });
    await blocked.done;
    const record = await blocked.record();
    expect(record.run.error).toEqual({
      code: "server_error",
      message: "The store was unavailable for too long; the run could not continue",
    });
    expect(control.calls.appendEvents).toBeGreaterThan(1);
  });
});

/** JSON text a PostgreSQL jsonb column refuses: NUL, or an unpaired surrogate (escaped by JSON.stringify). */
const REFUSED_JSON = /\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i;

/**
 * A memory store that refuses, as PostgreSQL does, writes whose JSON holds what `refuses` finds
 * (a StoreRefusedError: never an outage); counts the calls of each method.
 */
function refusingStore(refuses: RegExp): { store: Store; calls: Record<string, number> } {
  const inner = new MemoryStore();
  const calls: Record<string, number> = {};
  const store = interceptStore(inner, (method, args, call) => {
    calls[method] = (calls[method] ?? 0) + 1;
    if (["createRun", "updateRun", "appendEvents"].includes(method) && refuses.test(JSON.stringify(args)))
      return Promise.reject(new StoreRefusedError("test", `${method} refused the value: invalid input syntax`));
    return call();
  });
  return { store, calls };
}

describe("RunExecutor and values a store cannot hold", () => {
  it("replaces NUL and unpaired surrogates in what the handler yields with U+FFFD", async () => {
    const { store } = refusingStore(REFUSED_JSON);
    const odd = agent({ name: "odd" }, async function* oddHandler() {
      yield "a\u0000b";
      yield "lone \ud800 high, pair \ud83d\ude00 kept";
      yield { parts: [{ content: "\udc00", metadata: { kind: "trajectory", message: "m\u0000" } }] };
      yield { "k\u0000": ["v\udfff", { deep: "\u0000" }], fine: "yes" };
    });
    for (const unobserved of [false, true]) {
      const started = await start(odd, { store: guardStore(store, 1_000), unobserved, outageMs: 30_000 });
      await started.done;
      const record = await started.record();
      expect(record.run.status).toBe("completed");
      expect(texts(record.run)).toEqual([["a\ufffdb", "lone \ufffd high, pair \ud83d\ude00 kept"], ["\ufffd"]]);
      expect(record.run.output[1]!.parts[0]!.metadata).toMatchObject({ message: "m\ufffd" });
      const generic = (await started.events()).find((event) => event.type === "generic");
      expect(generic).toEqual({
        type: "generic",
        generic: { "k\ufffd": ["v\ufffd", { deep: "\ufffd" }], fine: "yes" },
      });
    }
  });

  it("replaces them in the error an agent throws as well", async () => {
    const { store } = refusingStore(REFUSED_JSON);
    const throwing = agent({ name: "throwing" }, async function* throwingHandler() {
      yield "working";
      throw new ACPError({ code: "invalid_input", message: "bad \u0000 input", data: { at: "\ud800" } });
    });
    const started = await start(throwing, { store: guardStore(store, 1_000), outageMs: 30_000 });
    await started.done;
    expect((await started.record()).run).toMatchObject({
      status: "failed",
      error: { code: "invalid_input", message: "bad \ufffd input", data: { at: "\ufffd" } },
    });
  });

  for (const unobserved of [false, true]) {
    it(`fails a run at once when the store refuses its output, and writes its end without it${unobserved ? " (unobserved run)" : ""}`, async () => {
      const { store, calls } = refusingStore(/REFUSE-ME/);
      const refused = agent({ name: "refused" }, async function* refusedHandler() {
        yield { parts: [{ content: "fine" }] };
        yield "REFUSE-ME";
        await new Promise((resolve) => setTimeout(resolve, 50));
        yield "more";
      });
      const began = Date.now();
      // A long outage allowance: a refusal retried as an outage would hold the run for 30 s.
      const started = await start(refused, { store: guardStore(store, 1_000), unobserved, outageMs: 30_000 });
      await started.done;
      expect(Date.now() - began).toBeLessThan(2_000);
      const record = await started.record();
      expect(record.run).toMatchObject({
        status: "failed",
        output: [],
        error: {
          code: "server_error",
          message: "The store refused a value of this run's output; the run failed and its output was not kept",
        },
      });
      const events = await started.events();
      expect(events.at(-1)).toEqual({ type: "run.failed", run: record.run });
      expect(JSON.stringify(events)).not.toContain("REFUSE-ME");
      // Nothing was retried: one refused append (or final write), one refused final write, one minimal end.
      expect((calls.appendEvents ?? 0) + (calls.updateRun ?? 0)).toBeLessThanOrEqual(4);
      expect(await store.getHistory(started.sessionId)).toBeUndefined();
    });
  }

  it("fails a run whose generic event the store refuses, keeping the output it could store", async () => {
    const { store } = refusingStore(/REFUSE-ME/);
    const refused = agent({ name: "refused" }, async function* refusedHandler() {
      yield { parts: [{ content: "fine" }] };
      await new Promise((resolve) => setTimeout(resolve, 20));
      yield { note: "REFUSE-ME" };
      await new Promise((resolve) => setTimeout(resolve, 50));
      yield "more";
    });
    const started = await start(refused, { store: guardStore(store, 1_000), outageMs: 30_000 });
    await started.done;
    const record = await started.record();
    expect(record.run.status).toBe("failed");
    expect(record.run.error).toEqual({
      code: "server_error",
      message: "The store refused a value the agent produced; the run cannot continue",
    });
    expect(texts(record.run)).toEqual([["fine"]]);
  });
});

/** A memory store whose subscriptions never notify: a pub/sub reconnect, a NOTIFY lost after its commit. */
function deafStore(): Store {
  return new Proxy(new MemoryStore(), {
    get(target, property, receiver) {
      if (property === "subscribe") return async () => async () => {};
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as Store;
}

describe("RunExecutor and a cancel whose notification is lost", () => {
  it("sees the cancel by re-reading its record when no notification comes", async () => {
    const deaf = deafStore();
    const endless = agent({ name: "endless" }, async function* endlessHandler(_input, ctx) {
      for (;;) {
        await sleep(5, ctx.signal);
        yield "tick ";
      }
    });
    const started = await start(endless, { store: deaf, init: { cancelCheckMs: 100 } });
    await eventually(async () => (await started.events()).some((event) => event.type === "message.part"));
    const cancelledAt = Date.now();
    await setStatus(started, "cancelling");
    const ended = await Promise.race([
      started.done.then(() => "ended"),
      new Promise((resolve) => setTimeout(() => resolve("still running after 3 s"), 3_000)),
    ]);
    expect(ended).toBe("ended");
    expect(Date.now() - cancelledAt).toBeLessThan(1_000);
    expect((await started.record()).run.status).toBe("cancelled");
  });

  it("sees a cancel of an awaiting run within two check intervals when no notification comes", async () => {
    const deaf = deafStore();
    const started = await start(approval, { text: "the plan", store: deaf, init: { cancelCheckMs: 100 } });
    await started.executor.whenSettled(1);
    const cancelledAt = Date.now();
    await setStatus(started, "cancelling");
    const ended = await Promise.race([
      started.done.then(() => "ended"),
      new Promise((resolve) => setTimeout(() => resolve("still awaiting after 3 s"), 3_000)),
    ]);
    expect(ended).toBe("ended");
    expect(Date.now() - cancelledAt).toBeLessThan(1_000);
    expect((await started.record()).run.status).toBe("cancelled");
  });
});

describe("RunExecutor and maxDurationMs", () => {
  it("cancels a run past its longest duration, running or awaiting", async () => {
    const warnings = vi.spyOn(console, "warn").mockImplementation(() => {});
    const endless = agent({ name: "endless" }, async function* endlessHandler(_input, ctx) {
      for (;;) {
        await sleep(5, ctx.signal);
        yield "tick ";
      }
    });
    for (const [slowAgent, text] of [
      [endless, "x"],
      [approval, "the plan"],
    ] as const) {
      const began = Date.now();
      const started = await start(slowAgent, { text, init: { maxDurationMs: 150 } });
      await started.done;
      expect(Date.now() - began).toBeGreaterThanOrEqual(140);
      expect(Date.now() - began).toBeLessThan(2_000);
      const record = await started.record();
      expect(record.run).toMatchObject({ status: "cancelled", error: null, await_request: null });
      expect(record.run.output.length).toBeGreaterThan(0);
    }
    expect(warnings).toHaveBeenCalledTimes(2);
  });
});

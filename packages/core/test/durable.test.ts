/**
 * Durable runs over two Runtime instances sharing one MemoryStore, with short leases: another
 * instance adopts a run whose owner stopped (lease out, drain, resume to a gone owner) and
 * replays its handler; steps run once, the log stays gapless without duplicates, a former
 * owner's writes are fenced, and a replay that calls other steps fails the run.
 */
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { agent, type Message, type RunCreateRequest, Runtime, type RuntimeOptions, type Store } from "../src/index.ts";
import { type AwaitResume, RunCreateRequestSchema, RunResumeRequestSchema } from "../src/models.ts";
import { sleep, textOf } from "./support/agents.ts";
import { eventually } from "./support/app.ts";
import { controlledStore, type StoreControl } from "./support/controlled-store.ts";

/** How many times each step's fn ran: `${runId}/${name}` → count. */
const ran = new Map<string, number>();
function count(runId: string, name: string): void {
  const key = `${runId}/${name}`;
  ran.set(key, (ran.get(key) ?? 0) + 1);
}
function runsOf(runId: string): Map<string, number> {
  const mine = new Map<string, number>();
  for (const [key, times] of ran) if (key.startsWith(`${runId}/`)) mine.set(key.slice(runId.length + 1), times);
  return mine;
}

/**
 * `steps=<n>` steps of `ms=<n>` milliseconds, each followed by a streamed part that says the
 * attempt (a replay yields its parts again with another text: the log's stay); then its attempt.
 */
const stepper = agent({ name: "stepper", durable: true }, async function* stepperHandler(input, ctx) {
  const text = textOf(input);
  const steps = Number(/steps=(\d+)/.exec(text)?.[1] ?? 5);
  const ms = Number(/ms=(\d+)/.exec(text)?.[1] ?? 20);
  for (let i = 0; i < steps; i++) {
    const value = await ctx.step(`step-${i}`, async (signal) => {
      count(ctx.runId, `step-${i}`);
      await sleep(ms, signal);
      return { i };
    });
    yield `part ${value.i}@${ctx.attempt} `;
  }
  yield { parts: [{ content: `attempt ${ctx.attempt}` }] };
});

/** A recorded plan, a question, then a recorded act that depends on the answer. */
const approve = agent({ name: "approve", durable: true }, async function* approveHandler(input, ctx) {
  const plan = await ctx.step("plan", () => {
    count(ctx.runId, "plan");
    return `plan for ${textOf(input)}`;
  });
  yield `Planned: ${plan}.`;
  const answer = yield { type: "message", message: { parts: [{ content: `Approve ${plan}?` }] } };
  const reply = answer ? textOf([answer.message]) : "";
  const done = await ctx.step("act", () => {
    count(ctx.runId, "act");
    return reply === "yes" ? "done" : "skipped";
  });
  yield { parts: [{ content: `${done} (attempt ${ctx.attempt})` }] };
});

/** Calls another step on a replay than on its first execution. */
const fickle = agent({ name: "fickle", durable: true }, async function* fickleHandler(_input, ctx) {
  await ctx.step(ctx.attempt === 1 ? "first" : "second", () => 1);
  yield "started ";
  await sleep(60_000, ctx.signal);
});

/** A step that fails once; the handler catches the error and goes on. */
const flaky = agent({ name: "flaky", durable: true }, async function* flakyHandler(_input, ctx) {
  const caught = await ctx
    .step("boom", () => {
      count(ctx.runId, "boom");
      throw new Error("boom: the service refused");
    })
    .catch((error: Error) => error.message);
  yield `caught ${caught} `;
  await ctx.step("wait", async (signal) => {
    count(ctx.runId, "wait");
    await sleep(ctx.attempt === 1 ? 60_000 : 1, signal);
  });
  yield { parts: [{ content: `attempt ${ctx.attempt}` }] };
});

/** Not durable: its step runs each time. */
const plain = agent({ name: "plain" }, async function* plainHandler(_input, ctx) {
  let calls = 0;
  await ctx.step("a", () => calls++);
  await ctx.step("a", () => calls++);
  yield `calls ${calls} attempt ${ctx.attempt}`;
});

/** Returns a step result of `bytes=<n>` characters. */
const big = agent({ name: "big", durable: true }, async function* bigHandler(input, ctx) {
  const bytes = Number(/bytes=(\d+)/.exec(textOf(input))?.[1] ?? 10);
  const result = await ctx.step("big", () => "x".repeat(bytes)).catch((error: Error) => error.message);
  yield result.length > 100 ? `length ${result.length}` : result;
});

const agents = [stepper, approve, fickle, flaky, plain, big];
const runtimes: Runtime[] = [];

beforeEach(() => {
  // Cut-off instances and fenced executors log; the assertions say what matters.
  vi.spyOn(console, "error").mockImplementation(() => {});
  vi.spyOn(console, "warn").mockImplementation(() => {});
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.shutdown({ deadlineMs: 0 })));
  vi.restoreAllMocks();
});

function runtimeOver(store: Store, options: Partial<RuntimeOptions> = {}): Runtime {
  const runtime = new Runtime({ store, agents, leaseMs: 300, storeTimeoutMs: 100, outageMs: 100, ...options });
  runtimes.push(runtime);
  return runtime;
}

function request(agentName: string, text: string, mode: "async" | "sync" = "async"): RunCreateRequest {
  return v.parse(RunCreateRequestSchema, {
    agent_name: agentName,
    input: [{ role: "user", parts: [{ content: text }] }],
    mode,
  });
}

function resumeWith(text: string): AwaitResume {
  return v.parse(RunResumeRequestSchema, {
    await_resume: { type: "message", message: { role: "user", parts: [{ content: text }] } },
  }).await_resume;
}

/**
 * Two instances over one memory store: the first through a switchboard (its heartbeat, or every
 * call, can be cut off), the second directly.
 */
async function twoInstances(
  second: Partial<RuntimeOptions> = {},
  memory = new MemoryStore(),
): Promise<{
  memory: MemoryStore;
  first: Runtime;
  second: Runtime;
  control: StoreControl;
}> {
  const { store, control } = controlledStore(memory);
  const firstRuntime = runtimeOver(store);
  const secondRuntime = runtimeOver(memory, second);
  await Promise.all([firstRuntime.start(), secondRuntime.start()]);
  return { memory, first: firstRuntime, second: secondRuntime, control };
}

/** The run's log: seqs 1…n without a gap, and the events in order. */
async function logOf(store: Store, runId: string) {
  const events = await store.readEvents(runId, 0);
  expect(events.map((stored) => stored.seq)).toEqual(events.map((_, index) => index + 1));
  return events.map((stored) => stored.event);
}

/** The text of every message.part event of the log, in order, without the attempt that sent it. */
function partsOf(events: Awaited<ReturnType<typeof logOf>>): string[] {
  return events.flatMap((event) =>
    event.type === "message.part" ? [(event.part.content ?? "").replace(/@\d /, " ")] : [],
  );
}

/** Each completed message's text, checked against the parts the log streamed for it. */
function completedAgainstParts(events: Awaited<ReturnType<typeof logOf>>): string[] {
  const completed: string[] = [];
  let streamed: string[] = [];
  for (const event of events) {
    if (event.type === "message.created") streamed = [];
    else if (event.type === "message.part") streamed.push(event.part.content ?? "");
    else if (event.type === "message.completed") {
      const text = event.message.parts.map((part) => part.content).join("");
      expect(text).toBe(streamed.join(""));
      completed.push(text);
    }
  }
  return completed;
}

const statuses = (events: Awaited<ReturnType<typeof logOf>>) =>
  events.flatMap((event) => (event.type.startsWith("run.") ? [event.type] : []));

describe("durable runs", () => {
  it("are adopted by another instance when their owner's lease runs out: steps run once, the log has every part once, attempt 2", async () => {
    const { memory, first, second, control } = await twoInstances();
    const created = await first.createRun(request("stepper", "steps=10 ms=30"));
    const runId = created.run.run_id;
    expect(created).toMatchObject({ epoch: 1, durable: { attempt: 1, input: [{ role: "user" }] } });
    await eventually(async () => (await memory.readSteps(runId)).length >= 3);
    control.failing = "all";
    const ended = await second.whenSettled(runId, 1);
    expect(ended.run.status).toBe("completed");
    expect(ended).toMatchObject({ owner: second.instanceId, epoch: 2, durable: { attempt: 2 } });
    const events = await logOf(memory, runId);
    const expected = [...Array.from({ length: 10 }, (_, i) => `part ${i} `), "attempt 2"];
    expect(partsOf(events)).toEqual(expected);
    expect(statuses(events)).toEqual(["run.created", "run.in-progress", "run.completed"]);
    // The streamed message is one message in the output, with every part once, as the log sent it.
    const completed = completedAgainstParts(events);
    expect(ended.run.output.map((message) => message.parts.map((part) => part.content).join(""))).toEqual(completed);
    expect(completed[0]).toMatch(/^part 0@1 part 1@1 part 2@1 .*part 9@2 $/);
    // Every step's fn ran once, but at most the one in flight when the owner was cut off.
    const counts = runsOf(runId);
    expect(counts.size).toBe(10);
    expect([...counts.values()].filter((times) => times > 1).length).toBeLessThanOrEqual(1);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
    // The first instance, back, writes nothing more.
    control.failing = new Set();
    await eventually(() => first.localRuns === 0, 3000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await logOf(memory, runId)).length).toBe(events.length);
  });

  it("fence a former owner: its appends and steps are refused once another instance took the run over", async () => {
    // Every answer to a write of epoch 1 (the first owner's), as the store gave it.
    const memory = new MemoryStore();
    const answers: unknown[] = [];
    const appendEvents = memory.appendEvents.bind(memory);
    const recordStep = memory.recordStep.bind(memory);
    memory.appendEvents = async (...args: Parameters<Store["appendEvents"]>) => {
      const answer = await appendEvents(...args);
      if (args[2] === 1) answers.push(answer);
      return answer;
    };
    memory.recordStep = async (...args: Parameters<Store["recordStep"]>) => {
      const answer = await recordStep(...args);
      if (args[1] === 1) answers.push(answer);
      return answer;
    };
    const { first, second, control } = await twoInstances({}, memory);
    // No notifications reach the first instance: it learns of the takeover from refused writes only.
    control.failing = new Set(["subscribe"]);
    const created = await first.createRun(request("stepper", "steps=8 ms=60"));
    const runId = created.run.run_id;
    await eventually(async () => (await memory.readSteps(runId)).length >= 2);
    control.failing = new Set(["subscribe", "heartbeat"]);
    const ended = await second.whenSettled(runId, 1);
    expect(ended.run.status).toBe("completed");
    await eventually(() => first.localRuns === 0, 3000);
    // The former owner tried to write after the takeover, and was refused.
    expect(answers.some((answer) => answer === null || answer === false)).toBe(true);
    const events = await logOf(memory, runId);
    expect(partsOf(events)).toEqual([...Array.from({ length: 8 }, (_, i) => `part ${i} `), "attempt 2"]);
    completedAgainstParts(events);
    expect(statuses(events)).toEqual(["run.created", "run.in-progress", "run.completed"]);
    const counts = runsOf(runId);
    expect([...counts.values()].filter((times) => times > 1).length).toBeLessThanOrEqual(1);
  });

  it("fail with server_error when the replay calls other steps than recorded", async () => {
    const { memory, first, second, control } = await twoInstances();
    const created = await first.createRun(request("fickle", "go"));
    const runId = created.run.run_id;
    await eventually(async () => partsOf(await logOf(memory, runId)).length === 1);
    control.failing = "all";
    const ended = await second.whenSettled(runId, 1);
    expect(ended.run).toMatchObject({
      status: "failed",
      error: { code: "server_error", message: "durable run diverged on replay" },
    });
    // The error says what differed, as docs/durable-runs.md promises.
    expect(ended.run.error?.data?.detail).toEqual(expect.any(String));
    expect(partsOf(await logOf(memory, runId))).toEqual(["started "]);
  });

  it("rethrow a recorded error on replay without running the step again", async () => {
    const { memory, first, second, control } = await twoInstances();
    const created = await first.createRun(request("flaky", "go"));
    const runId = created.run.run_id;
    await eventually(async () => (await memory.readSteps(runId)).length === 1);
    expect((await memory.readSteps(runId))[0]).toEqual({ index: 0, name: "boom", error: "boom: the service refused" });
    control.failing = "all";
    const ended = await second.whenSettled(runId, 1);
    expect(ended.run.status).toBe("completed");
    expect(partsOf(await logOf(memory, runId))).toEqual(["caught boom: the service refused ", "attempt 2"]);
    expect(runsOf(runId).get("boom")).toBe(1);
  });

  it("are handed off at once by a draining instance while they await; the other instance adopts and finishes them on resume", async () => {
    const { memory, first, second } = await twoInstances();
    const created = await first.createRun(request("approve", "the move"));
    const runId = created.run.run_id;
    expect((await first.whenSettled(runId, 1)).run.status).toBe("awaiting");
    const started = Date.now();
    await first.shutdown({ deadlineMs: 5000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await memory.getRun(runId)).toMatchObject({ owner: "", epoch: 1, run: { status: "awaiting" } });
    const { record } = await second.resume(runId, resumeWith("yes"));
    expect(record).toMatchObject({ owner: second.instanceId, epoch: 2, durable: { attempt: 2 } });
    const ended = await second.whenSettled(runId, record.version);
    expect(ended.run.status).toBe("completed");
    expect(ended.run.output.map((message: Message) => message.parts[0]!.content)).toEqual([
      "Planned: plan for the move.",
      "done (attempt 2)",
    ]);
    const events = await logOf(memory, runId);
    expect(partsOf(events)).toEqual(["Planned: plan for the move.", "done (attempt 2)"]);
    expect(statuses(events)).toEqual([
      "run.created",
      "run.in-progress",
      "run.awaiting",
      "run.in-progress",
      "run.completed",
    ]);
    expect(Object.fromEntries(runsOf(runId))).toEqual({ plan: 1, act: 1 });
    const steps = await memory.readSteps(runId);
    expect(steps.map((step) => step.name)).toEqual(["plan", "acp:resume", "act"]);
  });

  it("are handed off at the drain deadline while they run, and adopted by another instance's sweep", async () => {
    const { memory, first, second } = await twoInstances();
    const created = await first.createRun(request("stepper", "steps=6 ms=60"));
    const runId = created.run.run_id;
    await eventually(async () => (await memory.readSteps(runId)).length >= 2);
    await first.shutdown({ deadlineMs: 50 });
    const ended = await second.whenSettled(runId, 1);
    expect(ended).toMatchObject({ owner: second.instanceId, run: { status: "completed" }, durable: { attempt: 2 } });
    expect(partsOf(await logOf(memory, runId))).toEqual([
      ...Array.from({ length: 6 }, (_, i) => `part ${i} `),
      "attempt 2",
    ]);
  });

  it("are adopted by the instance that receives a resume when their owner is dead", async () => {
    // The second instance sweeps rarely: the resume, not its sweep, adopts the run.
    const { memory, first, second, control } = await twoInstances({ leaseMs: 60_000 });
    const created = await first.createRun(request("approve", "the plan"));
    const runId = created.run.run_id;
    await first.whenSettled(runId, 1);
    control.failing = "all";
    await eventually(async () => !(await memory.isAlive(first.instanceId)));
    const { record } = await second.resume(runId, resumeWith("no"));
    expect(record).toMatchObject({ owner: second.instanceId, epoch: 2, run: { status: "in-progress" } });
    const ended = await second.whenSettled(runId, record.version);
    expect(ended.run.output.at(-1)!.parts[0]!.content).toBe("skipped (attempt 2)");
    expect(Object.fromEntries(runsOf(runId))).toEqual({ plan: 1, act: 1 });
    expect(statuses(await logOf(memory, runId))).toEqual([
      "run.created",
      "run.in-progress",
      "run.awaiting",
      "run.in-progress",
      "run.completed",
    ]);
  });

  /**
   * An `approve` run awaiting on a first instance that is then cut off until its lease ran out,
   * beside a second instance that serves only `stepper` (lease 100 ms).
   */
  async function approvalOfALostInstanceBesideOneWithoutTheAgent(): Promise<{
    memory: MemoryStore;
    second: Runtime;
    runId: string;
  }> {
    const { memory, first, second, control } = await twoInstances({ agents: [stepper], leaseMs: 100 });
    const created = await first.createRun(request("approve", "the plan"));
    const runId = created.run.run_id;
    await first.whenSettled(runId, 1);
    control.failing = "all";
    await eventually(async () => !(await memory.isAlive(first.instanceId)));
    return { memory, second, runId };
  }

  it("are left by an instance that does not serve their agent for one that does (a deploy that moves agents)", async () => {
    const { memory, second, runId } = await approvalOfALostInstanceBesideOneWithoutTheAgent();
    // The second instance, without the agent, sweeps and leaves the run as it is.
    expect(await second.sweepOrphans()).toBe(0);
    expect((await memory.getRun(runId))?.run.status).toBe("awaiting");
    // An instance that serves the agent adopts it, and the run goes on there.
    const third = runtimeOver(memory);
    await third.start();
    expect(await third.sweepOrphans()).toBe(1);
    const { record } = await third.resume(runId, resumeWith("yes"));
    const ended = await third.whenSettled(runId, record.version);
    expect(ended.run.output.at(-1)!.parts[0]!.content).toBe("done (attempt 2)");
  });

  it("are failed by an instance that does not serve their agent once none that does adopted them for 20 leases", async () => {
    const { memory, second, runId } = await approvalOfALostInstanceBesideOneWithoutTheAgent();
    expect(await second.sweepOrphans()).toBe(0);
    // The second instance's own sweeps fail it once 20 of its leases (2 s) have passed.
    await eventually(async () => (await memory.getRun(runId))?.run.status === "failed", 10_000);
    expect((await memory.getRun(runId))?.run).toMatchObject({
      status: "failed",
      error: {
        code: "server_error",
        message:
          'The server instance running this run was lost, and no instance serving agent "approve" adopted it; the run cannot continue',
      },
    });
  });

  it("answer a resume with 503 when their replay fails here, rather than take them over again and again", async () => {
    const memory = new MemoryStore();
    const { store, control } = controlledStore(memory);
    const first = runtimeOver(memory);
    const second = runtimeOver(store, { leaseMs: 60_000 });
    await Promise.all([first.start(), second.start()]);
    const created = await first.createRun(request("approve", "the plan"));
    const runId = created.run.run_id;
    await first.whenSettled(runId, 1);
    await first.shutdown({ deadlineMs: 0 });
    control.failing = new Set(["readSteps"]);
    // Would a resume keep adopting it, the steps read again after a second: it would then succeed.
    const heal = setTimeout(() => {
      control.failing = new Set();
    }, 1000);
    const error = await second.resume(runId, resumeWith("yes")).catch((reason: unknown) => reason);
    clearTimeout(heal);
    expect(error).toMatchObject({ status: 503, code: "server_error" });
    // Taken over and handed back once (each takeover raises the epoch), still awaiting its resume.
    expect(await memory.getRun(runId)).toMatchObject({
      owner: "",
      epoch: 2,
      durable: { attempt: 2 },
      run: { status: "awaiting" },
    });
  });

  it("make the instance that adopts one on a resume alive first, even before its own start", async () => {
    const memory = new MemoryStore();
    const first = runtimeOver(memory);
    await first.start();
    const created = await first.createRun(request("approve", "the plan"));
    const runId = created.run.run_id;
    await first.whenSettled(runId, 1);
    await first.shutdown({ deadlineMs: 0 });
    const second = runtimeOver(memory);
    const { record } = await second.resume(runId, resumeWith("yes"));
    expect(record.owner).toBe(second.instanceId);
    expect(await memory.isAlive(second.instanceId)).toBe(true);
    expect((await second.whenSettled(runId, record.version)).run.status).toBe("completed");
  });

  it("take over a run resumed just before its owner died: the stored resume is handed in", async () => {
    const { memory, first, second, control } = await twoInstances();
    const created = await first.createRun(request("approve", "it"));
    const runId = created.run.run_id;
    await first.whenSettled(runId, 1);
    // The owner stops hearing anything, then a resume lands: it never picks it up.
    control.failing = "all";
    await second.resume(runId, resumeWith("yes"));
    const ended = await second.whenSettled(runId, 4);
    expect(ended.run.status).toBe("completed");
    expect(ended.run.output.at(-1)!.parts[0]!.content).toBe("done (attempt 2)");
    expect((await memory.readSteps(runId)).map((step) => step.name)).toEqual(["plan", "acp:resume", "act"]);
  });
});

describe("ctx.step", () => {
  it("runs fn each time in a run that is not durable; attempt is 1", async () => {
    const runtime = runtimeOver(new MemoryStore());
    const created = await runtime.createRun(request("plain", "x", "sync"));
    expect(created.durable).toBeUndefined();
    expect(created.epoch).toBeUndefined();
    const ended = await runtime.whenSettled(created.run.run_id, 1);
    expect(ended.run.output[0]!.parts[0]!.content).toBe("calls 2 attempt 1");
  });

  it("fails a step whose result is larger than limits.maxStepBytes, with an error saying so", async () => {
    const runtime = runtimeOver(new MemoryStore(), { limits: { maxStepBytes: 100 } });
    const small = await runtime.createRun(request("big", "bytes=10", "sync"));
    expect((await runtime.whenSettled(small.run.run_id, 1)).run.output[0]!.parts[0]!.content).toBe("xxxxxxxxxx");
    const large = await runtime.createRun(request("big", "bytes=200", "sync"));
    expect((await runtime.whenSettled(large.run.run_id, 1)).run.output[0]!.parts[0]!.content).toBe(
      'The result of step "big" is 202 bytes of JSON, more than the limit of 100 bytes (maxStepBytes)',
    );
    // Recorded as the step's error: a replay fails it the same way.
    expect(await runtime.store.readSteps(large.run.run_id)).toEqual([
      { index: 0, name: "big", error: expect.stringContaining("(maxStepBytes)") },
    ]);
  });

  it("refuses an empty or reserved step name", async () => {
    const runtime = runtimeOver(new MemoryStore());
    const bad = agent({ name: "bad", durable: true }, async (_input, ctx) => {
      const reasons: string[] = [];
      for (const name of ["", "acp:resume"]) await ctx.step(name, () => 1).catch((e: Error) => reasons.push(e.message));
      return reasons.join(" | ");
    });
    const only = new Runtime({ store: new MemoryStore(), agents: [bad] });
    runtimes.push(only);
    const created = await only.createRun(request("bad", "x", "sync"));
    const text = (await only.whenSettled(created.run.run_id, 1)).run.output[0]!.parts[0]!.content;
    expect(text).toContain("the name must be a non-empty string");
    expect(text).toContain('step names starting with "acp:" are reserved');
    void runtime;
  });
});

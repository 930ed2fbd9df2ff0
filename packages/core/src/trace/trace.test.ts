/**
 * Core's spans, recorded by an OpenTelemetry SDK with an in-memory exporter: the request's span,
 * the run's `invoke_agent` span with the GenAI attributes, the store's child spans, ERROR on a
 * failed run, an incoming `traceparent` as parent, a resume or a cancel through another instance
 * that lands in the run's trace, and a caller's decision not to sample kept by all of them.
 */
import { MemoryStore } from "@acp/store-memory";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { approval, echo, failing, slow } from "../../test/support/agents.ts";
import { createRun, eventually, startApp, stopApps, user } from "../../test/support/app.ts";
import { useInMemoryTracing } from "../../test/support/in-memory-tracing.ts";
import { agent } from "../agent.ts";
import type { Run } from "../models.ts";

const exporter = useInMemoryTracing();

beforeEach(() => exporter.reset());
afterEach(() => stopApps(200));

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const named = (name: string): ReadableSpan[] => spans().filter((span) => span.name === name);
const one = (name: string): ReadableSpan => {
  const found = named(name);
  expect(found, `spans named ${name} among ${spans().map((span) => span.name)}`).toHaveLength(1);
  return found[0]!;
};
const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

/** An agent that makes a span of its own, as an instrumented model client would, then answers. */
const modelCaller = agent({ name: "model-caller" }, async function* () {
  await new Promise((resolve) => setTimeout(resolve, 1));
  trace.getTracer("model-client").startSpan("chat").end();
  yield "answered";
});

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID = "00f067aa0ba902b7";
/** A caller's `traceparent` whose sampled flag is off: the caller decided this trace is not recorded. */
const UNSAMPLED = `00-${TRACE_ID}-${CALLER_SPAN_ID}-00`;

describe("traces", () => {
  it("records the request's span, the run's invoke_agent span under it and the store's calls under that", async () => {
    const served = await startApp([echo]);
    const run = await createRun(served, { agent_name: "echo", input: [user("hello")] });
    const request = one("POST /runs");
    expect(request.kind).toBe(SpanKind.SERVER);
    expect(request.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/runs",
      "http.response.status_code": 200,
      "url.path": "/runs",
    });
    const invoke = one("invoke_agent echo");
    expect(invoke.attributes).toEqual({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "echo",
      "gen_ai.conversation.id": run.session_id,
      "acp.run.id": run.run_id,
      "acp.run.attempt": 1,
      "acp.run.status": "completed",
      "acp.instance.id": served.app.runtime.instanceId,
    });
    expect(invoke.status.code).toBe(SpanStatusCode.UNSET);
    expect(invoke.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(parentOf(invoke)).toBe(request.spanContext().spanId);
    // The run's end is written in its span: a sync run that ends at once is stored once, ended.
    const writes = named("store createRun").filter((span) => parentOf(span) === invoke.spanContext().spanId);
    expect(writes.length).toBe(1);
    expect(writes[0]!.kind).toBe(SpanKind.CLIENT);
    expect(writes[0]!.attributes["db.operation.name"]).toBe("createRun");
    // Its context is stored with the run.
    const stored = await served.store.getRun(run.run_id);
    expect(stored?.trace?.traceparent).toBe(`00-${invoke.spanContext().traceId}-${invoke.spanContext().spanId}-01`);
  });

  it("names a request's span by its route pattern, never by an id", async () => {
    const served = await startApp([echo]);
    const run = await createRun(served, { agent_name: "echo", input: [user("hi")] });
    await served.request(`/runs/${run.run_id}`);
    await served.request("/nowhere");
    const read = one("GET /runs/:run_id");
    expect(read.attributes["http.route"]).toBe("/runs/:run_id");
    expect(read.attributes["url.path"]).toBe(`/runs/${run.run_id}`);
    const missing = one("GET");
    expect(missing.attributes["http.response.status_code"]).toBe(404);
    expect(missing.attributes["http.route"]).toBeUndefined();
    expect(missing.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("sets status ERROR with the error's code on the span of a failed run", async () => {
    const served = await startApp([failing]);
    const run = await createRun(served, { agent_name: "failing", input: [user("please fail")] });
    expect(run.status).toBe("failed");
    const invoke = one("invoke_agent failing");
    expect(invoke.status).toEqual({ code: SpanStatusCode.ERROR, message: run.error?.message });
    expect(invoke.attributes["error.type"]).toBe(run.error?.code);
    expect(invoke.attributes["acp.run.status"]).toBe("failed");
  });

  it("makes an incoming traceparent the parent of the request's span, and so of the run's", async () => {
    const served = await startApp([echo]);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpanId = "00f067aa0ba902b7";
    const response = await served.post(
      "/runs",
      { agent_name: "echo", input: [user("hi")] },
      { traceparent: `00-${traceId}-${callerSpanId}-01` },
    );
    expect(response.status).toBe(200);
    const request = one("POST /runs");
    expect(request.spanContext().traceId).toBe(traceId);
    expect(parentOf(request)).toBe(callerSpanId);
    expect(one("invoke_agent echo").spanContext().traceId).toBe(traceId);
  });

  it("makes the agent's own spans children of the run's invoke_agent span", async () => {
    const served = await startApp([modelCaller]);
    await createRun(served, { agent_name: "model-caller", input: [user("hi")] });
    const invoke = one("invoke_agent model-caller");
    const chat = one("chat");
    expect(chat.spanContext().traceId).toBe(invoke.spanContext().traceId);
    expect(parentOf(chat)).toBe(invoke.spanContext().spanId);
  });

  it("keeps a caller's decision not to sample: no span of the request, the run, the store or the agent is recorded", async () => {
    const served = await startApp([modelCaller]);
    const response = await served.post(
      "/runs",
      { agent_name: "model-caller", input: [user("hi")] },
      { traceparent: UNSAMPLED },
    );
    const run = (await response.json()) as Run;
    expect(run.status).toBe("completed");
    expect(spans().map((span) => span.name)).toEqual([]);
    // The decision is stored with the run, for work on it elsewhere.
    const stored = await served.store.getRun(run.run_id);
    expect(stored?.trace?.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`));
  });

  it("records nothing of a resume through another instance when the run's trace was not sampled", async () => {
    const store = new MemoryStore();
    const first = await startApp([approval], {}, store);
    const second = await startApp([approval], {}, store);
    const created = await first.post(
      "/runs",
      { agent_name: "approval", input: [user("the plan")], mode: "async" },
      { traceparent: UNSAMPLED },
    );
    const run = (await created.json()) as Run;
    await eventually(async () => (await store.getRun(run.run_id))?.run.status === "awaiting");
    const resumed = await second.post(
      `/runs/${run.run_id}`,
      { await_resume: { type: "message", message: user("yes") }, mode: "sync" },
      { traceparent: UNSAMPLED },
    );
    expect(((await resumed.json()) as Run).status).toBe("completed");
    await first.app.runtime.shutdown();
    expect(spans().map((span) => span.name)).toEqual([]);
  });

  it("puts a resume through another instance into the run's trace, linked to that request's", async () => {
    const store = new MemoryStore();
    const first = await startApp([approval], {}, store);
    const second = await startApp([approval], {}, store);
    const created = await first.post("/runs", { agent_name: "approval", input: [user("the plan")], mode: "async" });
    const run = (await created.json()) as Run;
    await eventually(async () => (await store.getRun(run.run_id))?.run.status === "awaiting");
    const resumed = await second.post(`/runs/${run.run_id}`, {
      await_resume: { type: "message", message: user("yes") },
      mode: "sync",
    });
    expect(((await resumed.json()) as Run).status).toBe("completed");
    const invoke = await eventually(() => named("invoke_agent approval")[0]);
    const resume = one("resume approval");
    expect(resume.spanContext().traceId).toBe(invoke.spanContext().traceId);
    expect(parentOf(resume)).toBe(invoke.spanContext().spanId);
    expect(resume.attributes["acp.instance.id"]).toBe(second.app.runtime.instanceId);
    expect(invoke.attributes["acp.instance.id"]).toBe(first.app.runtime.instanceId);
    const request = one("POST /runs/:run_id");
    expect(request.spanContext().traceId).not.toBe(invoke.spanContext().traceId);
    expect(resume.links.map((link) => link.context.spanId)).toEqual([request.spanContext().spanId]);
    expect(request.links.map((link) => link.context.spanId)).toEqual([resume.spanContext().spanId]);
  });

  it("puts a cancel through another instance into the run's trace; the run's span ends cancelled", async () => {
    const store = new MemoryStore();
    const first = await startApp([slow], {}, store);
    const second = await startApp([slow], {}, store);
    const created = await first.post("/runs", { agent_name: "slow", input: [user("ticks=100 ms=20")], mode: "async" });
    const run = (await created.json()) as Run;
    expect((await second.post(`/runs/${run.run_id}/cancel`, {})).status).toBe(202);
    const invoke = await eventually(() => named("invoke_agent slow")[0]);
    const cancel = one("cancel slow");
    expect(cancel.spanContext().traceId).toBe(invoke.spanContext().traceId);
    expect(parentOf(cancel)).toBe(invoke.spanContext().spanId);
    expect(invoke.attributes["acp.run.status"]).toBe("cancelled");
    expect(invoke.status.code).toBe(SpanStatusCode.UNSET);
  });
});

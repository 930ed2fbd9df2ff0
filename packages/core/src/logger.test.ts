import { context, type SpanContext, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { failing } from "../test/support/agents.ts";
import { createRun, startApp, stopApps, user } from "../test/support/app.ts";
import { consoleLogger, type Logger, runFields } from "./logger.ts";
import { ListenerSet } from "./store/listener-set.ts";

/** One call of a {@link capturingLogger}. */
interface Line {
  level: "error" | "warn" | "info" | "debug";
  fields: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps its lines, for assertions. */
function capturingLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: Line["level"]) =>
    (fields: object, msg?: string): void => {
      lines.push({ level, fields: { ...fields } as Record<string, unknown>, msg });
    };
  return { lines, error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
}

const spanContext: SpanContext = {
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
  traceFlags: TraceFlags.SAMPLED,
};

/** Runs `fn` with a span of `spanContext` active (no SDK: a context manager is all it takes). */
function inSpan<T>(fn: () => T): T {
  return context.with(trace.setSpan(context.active(), trace.wrapSpanContext(spanContext)), fn);
}

const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});

afterAll(() => {
  context.disable();
});

afterEach(async () => {
  await stopApps();
  vi.restoreAllMocks();
});

describe("consoleLogger", () => {
  it("writes one readable line with the fields, and the error apart so that its stack prints", () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const failure = new Error("boom");
    consoleLogger.error({ run_id: "r1", agent: "echo", reason: "two words", err: failure }, "the run failed");
    expect(errors).toHaveBeenCalledWith('[acp] the run failed run_id=r1 agent=echo reason="two words"', failure);
  });

  it("sends warnings and information to console.warn and console.log, drops debug lines, and binds fields in a child", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const debug = vi.spyOn(console, "debug").mockImplementation(() => {});
    const child = consoleLogger.child?.({ instance_id: "i1" });
    child?.warn({ left_out: 2 }, "history items left out");
    child?.info({}, "started");
    child?.debug({}, "detail");
    expect(warn).toHaveBeenCalledWith("[acp] history items left out instance_id=i1 left_out=2");
    expect(log).toHaveBeenCalledWith("[acp] started instance_id=i1");
    expect(debug).not.toHaveBeenCalled();
  });
});

describe("runFields", () => {
  const run = { run_id: "r1", session_id: "s1", agent_name: "echo" };

  it("names the run, its session, its agent and the instance, and no trace outside one", () => {
    expect(runFields(run, "i1")).toEqual({ run_id: "r1", session_id: "s1", agent: "echo", instance_id: "i1" });
  });

  it("adds the active trace's ids inside a span", () => {
    expect(inSpan(() => runFields(run, "i1"))).toMatchObject({
      trace_id: spanContext.traceId,
      span_id: spanContext.spanId,
    });
  });
});

describe("the logger option", () => {
  it("logs a run's failure with its run_id, session_id, agent and instance_id, and the error under err", async () => {
    const logger = capturingLogger();
    const served = await startApp([failing], { logger });
    const run = await createRun(served, { agent_name: "failing", input: [user("crash")] });
    const line = logger.lines.find((entry) => entry.msg === "the run failed");
    expect(line?.level).toBe("error");
    expect(line?.fields).toMatchObject({
      run_id: run.run_id,
      session_id: run.session_id,
      agent: "failing",
      instance_id: served.app.runtime.instanceId,
    });
    expect(String(line?.fields.err)).toContain("internal detail that must not leak");
    expect(line?.fields.trace_id).toBeUndefined();
  });

  it("puts the trace_id of the active trace on the lines of a run started inside it", async () => {
    const logger = capturingLogger();
    const served = await startApp([failing], { logger });
    const run = await inSpan(() => createRun(served, { agent_name: "failing", input: [user("crash")] }));
    const line = logger.lines.find((entry) => entry.msg === "the run failed");
    expect(line?.fields).toMatchObject({ run_id: run.run_id, trace_id: spanContext.traceId });
  });

  it("reaches the stores' listener sets", () => {
    const logger = capturingLogger();
    const listeners = new ListenerSet("store-test", logger);
    const failure = new Error("boom");
    listeners.add("run-1", () => {
      throw failure;
    });
    listeners.notify("run-1", "events");
    expect(logger.lines).toEqual([
      {
        level: "error",
        fields: { key: "run-1", err: failure },
        msg: "[store-test] a change listener threw (listeners must not throw)",
      },
    ]);
  });
});

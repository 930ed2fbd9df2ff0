/**
 * Without an OpenTelemetry SDK, tracing costs next to nothing: spans are non-recording, and no
 * trace context is stored with a run.
 */
import { trace } from "@opentelemetry/api";
import { afterEach, describe, expect, it } from "vitest";
import { echo } from "../../test/support/agents.ts";
import { createRun, startApp, stopApps, user } from "../../test/support/app.ts";
import { tracer } from "./tracing.ts";

afterEach(() => stopApps(200));

describe("tracing without an SDK", () => {
  it("starts non-recording spans and stores no trace context with the run", async () => {
    expect(tracer.startSpan("x").isRecording()).toBe(false);
    expect(trace.getActiveSpan()).toBeUndefined();
    const served = await startApp([echo]);
    const run = await createRun(served, { agent_name: "echo", input: [user("hello")] });
    expect(run.status).toBe("completed");
    expect("trace" in ((await served.store.getRun(run.run_id)) ?? {})).toBe(false);
  });
});

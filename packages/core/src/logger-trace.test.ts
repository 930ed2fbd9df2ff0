/**
 * Log lines and traces meet: with an OpenTelemetry SDK installed, the line of a failed run names
 * the trace and the `invoke_agent` span it was written in (apart from logger.test.ts, which runs
 * without an SDK).
 */
import { afterEach, describe, expect, it } from "vitest";
import { failing } from "../test/support/agents.ts";
import { startApp, stopApps, user } from "../test/support/app.ts";
import { useInMemoryTracing } from "../test/support/in-memory-tracing.ts";
import type { Logger } from "./logger.ts";

const exporter = useInMemoryTracing();

afterEach(() => stopApps(200));

/**
 * Starts an app of the failing agent with a logger that keeps its lines, makes one run with the
 * given traceparent, and answers the run and its "the run failed" line.
 */
async function failedRunLine(
  traceparent: string,
): Promise<{ run: { run_id: string; status: string }; line?: { fields: Record<string, unknown>; msg?: string } }> {
  const lines: { fields: Record<string, unknown>; msg?: string }[] = [];
  const keep = (fields: object, msg?: string): void => {
    lines.push({ fields: fields as Record<string, unknown>, msg });
  };
  const logger: Logger = { error: keep, warn: keep, info: keep, debug: keep };
  const served = await startApp([failing], { logger });
  const response = await served.post("/runs", { agent_name: "failing", input: [user("crash")] }, { traceparent });
  const run = (await response.json()) as { run_id: string; status: string };
  return { run, line: lines.find((entry) => entry.msg === "the run failed") };
}

describe("log lines in a trace", () => {
  it("carry the trace_id of the client's traceparent and the span_id of the run's invoke_agent span", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const { run, line } = await failedRunLine(`00-${traceId}-b7ad6b7169203331-01`);
    expect(run.status).toBe("failed");
    expect(line?.fields).toMatchObject({ run_id: run.run_id, trace_id: traceId, trace_flags: "01" });
    const span = exporter.getFinishedSpans().find((finished) => finished.name === "invoke_agent failing");
    expect(span?.spanContext().traceId).toBe(traceId);
    expect(line?.fields.span_id).toBe(span?.spanContext().spanId);
  });

  it("say with trace_flags 00 that the trace was not sampled, when the caller's traceparent said so", async () => {
    const traceId = "5b8efff798038103d269b633813fc60c";
    const { run, line } = await failedRunLine(`00-${traceId}-b7ad6b7169203331-00`);
    expect(line?.fields).toMatchObject({ run_id: run.run_id, trace_id: traceId, trace_flags: "00" });
    expect(exporter.getFinishedSpans().filter((finished) => finished.spanContext().traceId === traceId)).toEqual([]);
  });
});

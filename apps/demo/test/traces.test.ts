/**
 * The demo's traces over a real OTLP/HTTP exporter: demo processes started with
 * `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a receiver of the test (OTLP/JSON), configured by
 * the standard variables only. A run's spans arrive with `service.name` from `OTEL_SERVICE_NAME`;
 * on Redis, a run created on one instance and resumed on the other, and a durable run handed off
 * by a draining instance and taken over by the other, stay in one trace.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, redisBackend } from "./ha/backends.ts";
import { type Instance, startInstance, stopInstances } from "./support/cluster.ts";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./support/otlp-receiver.ts";

let receiver: OtlpReceiver | undefined;
let instances: Instance[] = [];
let backend: Backend | undefined;

afterEach(async () => {
  await stopInstances(instances);
  instances = [];
  await receiver?.close();
  receiver = undefined;
  await backend?.cleanup();
  backend = undefined;
});

/** The variables an operator sets to send the demo's traces to `receiver` as `service`. */
function otelEnv(receiver: OtlpReceiver, service: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_SERVICE_NAME: service,
    // Spans go out a tenth of a second after they end, not five seconds.
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
}

const user = (content: string) => ({ role: "user", parts: [{ content }] });

/** The fields of a run the test reads. */
interface RunJson {
  run_id: string;
  session_id?: string;
  status: string;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RunJson> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  return (await response.json()) as RunJson;
}

async function untilStatus(url: string, runId: string, status: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const run = (await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string };
    if (run.status === status) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`run ${runId} did not reach ${status}`);
}

const ofRun = (runId: string, name: string) => (spans: ReceivedSpan[]) =>
  spans.find((span) => span.name === name && span.attributes["acp.run.id"] === runId);

describe("demo traces over OTLP/HTTP", () => {
  it("sends a run's spans, with service.name from OTEL_SERVICE_NAME and the caller's traceparent as parent", async () => {
    receiver = await startOtlpReceiver();
    const service = `acp-traces-${randomBytes(3).toString("hex")}`;
    const instance = await startInstance(otelEnv(receiver, service));
    instances.push(instance);
    expect(instance.output()).toContain(`traces: OpenTelemetry, OTLP http/json to ${receiver.url}`);
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const run = await post(
      `${instance.url}/runs`,
      { agent_name: "failing", input: [user("hello")] },
      { traceparent: `00-${traceId}-${callerSpanId}-01` },
    );
    expect(run.status).toBe("failed");
    const invoke = await receiver.until(ofRun(run.run_id, "invoke_agent failing"));
    expect(invoke.resource["service.name"]).toBe(service);
    expect(invoke.traceId).toBe(traceId);
    expect(invoke.attributes).toMatchObject({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "failing",
      "gen_ai.conversation.id": run.session_id,
      "acp.run.status": "failed",
    });
    expect(invoke.statusCode).toBe(2);
    const request = await receiver.until((spans) => spans.find((span) => span.spanId === invoke.parentSpanId));
    expect(request.name).toBe("POST /runs");
    expect(request.parentSpanId).toBe(callerSpanId);
    expect(request.attributes).toMatchObject({ "http.route": "/runs", "http.response.status_code": 200 });
    const store = await receiver.until((spans) => spans.filter((span) => span.parentSpanId === invoke.spanId));
    // A sync run is stored by its first write, usually its end (createRun), else updated at its end.
    expect(store.map((span) => span.name)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^store (createRun|updateRun)$/)]),
    );
    expect(receiver.rejected).toBe(0);
  });

  it("keeps a run resumed on another instance, and a durable run taken over by another, in one trace (Redis)", async () => {
    receiver = await startOtlpReceiver();
    backend = redisBackend();
    const env = { ...backend.env, ...otelEnv(receiver, "acp-traces-ha"), ACP_LEASE_MS: "1000" };
    const [a, b] = [await startInstance(env), await startInstance(env)];
    instances.push(a, b);

    // Created on A, resumed through B: the resume's span is a child of the run's span on A.
    const run = await post(`${a.url}/runs`, { agent_name: "approval", input: [user("the plan")], mode: "async" });
    await untilStatus(a.url, run.run_id, "awaiting");
    const resumed = await post(`${b.url}/runs/${run.run_id}`, {
      await_resume: { type: "message", message: user("yes") },
      mode: "sync",
    });
    expect(resumed.status).toBe("completed");
    const invoke = await receiver.until(ofRun(run.run_id, "invoke_agent approval"));
    const resume = await receiver.until(ofRun(run.run_id, "resume approval"));
    expect(resume.traceId).toBe(invoke.traceId);
    expect(resume.parentSpanId).toBe(invoke.spanId);
    expect(resume.attributes["acp.instance.id"]).not.toBe(invoke.attributes["acp.instance.id"]);
    const request = await receiver.until((spans) =>
      spans.find((span) => span.name === "POST /runs/:run_id" && span.links.some((l) => l.spanId === resume.spanId)),
    );
    expect(resume.links).toEqual([{ traceId: request.traceId, spanId: request.spanId }]);

    // A durable run awaiting on A; A drains (hands it off), B takes it over at the resume.
    const durable = await post(`${a.url}/runs`, {
      agent_name: "durable-approval",
      input: [user("the deploy")],
      mode: "async",
    });
    await untilStatus(a.url, durable.run_id, "awaiting");
    await stopInstances([a]);
    const done = await post(`${b.url}/runs/${durable.run_id}`, {
      await_resume: { type: "message", message: user("yes") },
      mode: "sync",
    });
    expect(done.status).toBe("completed");
    const first = await receiver.until((spans) =>
      spans.find(
        (span) => span.attributes["acp.run.id"] === durable.run_id && span.attributes["acp.run.attempt"] === 1,
      ),
    );
    const second = await receiver.until((spans) =>
      spans.find(
        (span) => span.attributes["acp.run.id"] === durable.run_id && span.attributes["acp.run.attempt"] === 2,
      ),
    );
    expect(first.name).toBe("invoke_agent durable-approval");
    expect(second.name).toBe("invoke_agent durable-approval");
    expect(second.traceId).toBe(first.traceId);
    expect(second.parentSpanId).toBe(first.spanId);
    expect(first.attributes["acp.instance.id"]).not.toBe(second.attributes["acp.instance.id"]);
    expect(second.attributes["acp.run.status"]).toBe("completed");
  });
});

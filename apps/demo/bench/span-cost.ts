/**
 * The floor of tracing's cost: the CPU the OpenTelemetry SDK itself takes for the spans of one
 * traced sync run, with no server around them. The same SDK set-up as the bench servers'
 * (tracing-sdk.ts) and the spans core makes for a sync echo run: the request's SERVER span, the
 * run's `invoke_agent` span and one store call's CLIENT span, with their attributes, each a child
 * of the one before, the run's work entered through the context manager as core does. Prints one
 * JSON line: `{ usPerRun, runs }`. Run as its own process (scenarios/observability.ts forks it),
 * so that nothing else shares its event loop or heap.
 */
import { context, SpanKind, trace } from "@opentelemetry/api";
import { startTracingSdk } from "./tracing-sdk.ts";

const stop = startTracingSdk();
const tracer = trace.getTracer("@acp/core");
const SERVER = { kind: SpanKind.SERVER };
const CLIENT = { kind: SpanKind.CLIENT };

/** One run's spans, as core makes them for `POST /runs` of the echo agent on the memory store. */
function oneRun(index: number): void {
  const request = tracer.startSpan("POST", SERVER, context.active());
  request.setAttribute("http.request.method", "POST");
  request.setAttribute("url.path", "/runs");
  request.setAttribute("url.scheme", "http");
  request.setAttribute("user_agent.original", "wrk");
  context.with(trace.setSpan(context.active(), request), () => {
    const run = tracer.startSpan("invoke_agent echo", undefined, context.active());
    run.setAttribute("gen_ai.operation.name", "invoke_agent");
    run.setAttribute("gen_ai.agent.name", "echo");
    run.setAttribute("acp.run.id", `run-${index}`);
    run.setAttribute("acp.instance.id", "bench");
    run.setAttribute("acp.run.attempt", 1);
    run.setAttribute("gen_ai.conversation.id", `session-${index}`);
    context.with(trace.setSpan(context.active(), run), () => {
      const store = tracer.startSpan("store createRun", CLIENT, context.active());
      store.setAttribute("db.operation.name", "createRun");
      store.end();
    });
    run.setAttribute("acp.run.status", "completed");
    run.end();
  });
  request.setAttribute("http.route", "/runs");
  request.updateName("POST /runs");
  request.setAttribute("http.response.status_code", 200);
  request.end();
}

/** Runs `count` runs' spans in turns of 64 (as many as the bench's connections), a macrotask apart as requests are. */
async function time(count: number): Promise<number> {
  const before = process.cpuUsage();
  for (let done = 0; done < count; ) {
    for (let turn = 0; turn < 64 && done < count; turn++) oneRun(done++);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

const RUNS = Number(process.env.BENCH_SPAN_RUNS) || 200_000;
// Warm-up: V8 optimises the SDK's code, and the batch processor reaches its steady state.
await time(RUNS / 4);
const micros = await time(RUNS);
await stop();
console.log(JSON.stringify({ usPerRun: micros / RUNS, runs: RUNS }));

/**
 * Core's spans, through `@opentelemetry/api` alone: without an SDK installed by the application
 * every span is a non-recording one and nothing else is done (no attributes built, no context
 * switched). The trace context of a run travels with it in the store ({@link StoredRun.trace}), so
 * that work on the run done on another instance lands in the same trace.
 *
 * A span the SDK's sampler dropped records nothing but still belongs to a trace: it is made
 * active and stored like a recorded one, so that what follows (the run under the request, the
 * agent's own calls, a resume elsewhere) inherits the decision instead of sampling again as a
 * new trace of its own. Only a span of no trace at all (no SDK) is skipped.
 */
import {
  type Context,
  context,
  createTraceState,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { ErrorModel, Run } from "../models.ts";
import type { RunTraceContext, StoredRun } from "../store.ts";
import {
  ACP_INSTANCE_ID,
  ACP_RUN_ATTEMPT,
  ACP_RUN_ID,
  ACP_RUN_STATUS,
  DB_OPERATION_NAME,
  ERROR_TYPE,
  GEN_AI_AGENT_NAME,
  GEN_AI_CONVERSATION_ID,
  GEN_AI_OPERATION_NAME,
  INVOKE_AGENT,
} from "./attributes.ts";

/** Core's tracer; a proxy, so an SDK registered after this module loaded is still used. */
export const tracer = trace.getTracer("@acp/core");

const CLIENT = { kind: SpanKind.CLIENT };

/**
 * Whether `span` belongs to a trace: it records, or the sampler dropped it (its context is still
 * valid, with the sampled flag off). Without an SDK no span does.
 */
export function inTrace(span: Span): boolean {
  return span.isRecording() || isSpanContextValid(span.spanContext());
}

/** Runs `fn` with `span` as the active span; with no span of a trace, just runs it. */
export function inSpan<T>(span: Span | undefined, fn: () => T): T {
  if (span === undefined || !inTrace(span)) return fn();
  return context.with(trace.setSpan(context.active(), span), fn);
}

/**
 * The W3C trace context of `span`, to store with its run (its sampled flag too, so that work on
 * the run elsewhere keeps the decision); `undefined` when it belongs to no trace.
 */
export function traceContextOf(span: Span): RunTraceContext | undefined {
  if (!inTrace(span)) return undefined;
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  const flags = (traceFlags & 0xff).toString(16).padStart(2, "0");
  const stored: RunTraceContext = { traceparent: `00-${traceId}-${spanId}-${flags}` };
  const state = traceState?.serialize();
  if (state) stored.tracestate = state;
  return stored;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** A context whose parent is the stored span of a run; `undefined` without one (or a malformed one). */
export function storedTraceContext(stored: RunTraceContext | undefined): Context | undefined {
  const match = stored === undefined ? null : TRACEPARENT.exec(stored.traceparent);
  if (match === null || match[1] === "ff") return undefined;
  const spanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16),
    isRemote: true,
    traceState: stored?.tracestate ? createTraceState(stored.tracestate) : undefined,
  };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : undefined;
}

/** A link to the span active now, when there is one and it belongs to another trace than `parent`. */
function linkToActive(parent: Context | undefined): Link[] | undefined {
  const active = trace.getActiveSpan()?.spanContext();
  if (active === undefined || !isSpanContextValid(active)) return undefined;
  const parentTrace = parent === undefined ? undefined : trace.getSpanContext(parent)?.traceId;
  return parentTrace === undefined || parentTrace === active.traceId ? undefined : [{ context: active }];
}

/**
 * Starts the `invoke_agent <agent name>` span of one execution of a run: a child of the span
 * active now for a new run (the request's); for a takeover, a child of the run's stored span
 * (`record.trace`), linked to the span active now (a resume's request, say) when that one is in
 * another trace.
 */
export function startRunSpan(run: Run, instanceId: string, stored?: StoredRun, attempt = 1): Span {
  const parent = storedTraceContext(stored?.trace);
  const links = parent === undefined ? undefined : linkToActive(parent);
  const span = tracer.startSpan(
    `${INVOKE_AGENT} ${run.agent_name}`,
    links === undefined ? undefined : { links },
    parent ?? context.active(),
  );
  if (!span.isRecording()) return span;
  // One attribute at a time: no object to build and walk.
  span.setAttribute(GEN_AI_OPERATION_NAME, INVOKE_AGENT);
  span.setAttribute(GEN_AI_AGENT_NAME, run.agent_name);
  span.setAttribute(ACP_RUN_ID, run.run_id);
  span.setAttribute(ACP_INSTANCE_ID, instanceId);
  span.setAttribute(ACP_RUN_ATTEMPT, attempt);
  if (run.session_id) span.setAttribute(GEN_AI_CONVERSATION_ID, run.session_id);
  return span;
}

/** Ends a run's span with the run as it is now: status ERROR when it failed. */
export function endRunSpan(span: Span, run: Run): void {
  if (span.isRecording()) {
    span.setAttribute(ACP_RUN_STATUS, run.status);
    if (run.status === "failed") failSpan(span, run.error);
  }
  span.end();
}

/** Marks `span` failed with `error` (an ACP error, or anything thrown); no-op when it records nothing. */
export function failSpan(span: Span, error: ErrorModel | null | unknown): void {
  if (!span.isRecording()) return;
  const model = error as Partial<ErrorModel> | null | undefined;
  const type = typeof model?.code === "string" ? model.code : error instanceof Error ? error.name : "_OTHER";
  span.setAttribute(ERROR_TYPE, type);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: typeof model?.message === "string" ? model.message : undefined,
  });
}

/**
 * Runs `fn` (a resume, a cancel) in a span of the run's trace: a child of its stored span, linked
 * to the span active now (the request's) when that is in another trace; without a stored trace
 * context, a child of the active span. Without an SDK, just runs `fn`.
 */
export async function inRunTrace<T>(
  name: string,
  record: StoredRun,
  instanceId: string,
  fn: () => Promise<T>,
): Promise<T> {
  const parent = storedTraceContext(record.trace);
  const links = parent === undefined ? undefined : linkToActive(parent);
  const span = tracer.startSpan(
    `${name} ${record.run.agent_name}`,
    links === undefined ? undefined : { links },
    parent ?? context.active(),
  );
  if (!span.isRecording()) return inTrace(span) ? inSpan(span, fn) : fn();
  span.setAttributes({
    [GEN_AI_AGENT_NAME]: record.run.agent_name,
    [ACP_RUN_ID]: record.run.run_id,
    [ACP_INSTANCE_ID]: instanceId,
  });
  if (record.run.session_id) span.setAttribute(GEN_AI_CONVERSATION_ID, record.run.session_id);
  // The request's span points at the run's trace too, so either side finds the other.
  const active = trace.getActiveSpan();
  if (links !== undefined && active !== undefined) active.addLink({ context: span.spanContext() });
  try {
    return await context.with(trace.setSpan(context.active(), span), fn);
  } catch (error) {
    failSpan(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * The span of one store call, `name` (`store <method>`, built once per method by the caller): a
 * child of the active span when that one records; `undefined` otherwise. Store calls outside any
 * recording span (heartbeats, sweeps) are not traced, and without an SDK this is one context lookup.
 * The caller ends it with {@link endStoreSpan} when the call settles.
 */
export function startStoreSpan(name: string, method: string): Span | undefined {
  const active = context.active();
  if (!trace.getSpan(active)?.isRecording()) return undefined;
  const span = tracer.startSpan(name, CLIENT, active);
  span.setAttribute(DB_OPERATION_NAME, method);
  return span;
}

/** Ends a store call's span; failed with `error` when the call failed. */
export function endStoreSpan(span: Span, failed: boolean, error?: unknown): void {
  if (failed) failSpan(span, error);
  span.end();
}

/** Ends the span of a run that could not start (its create failed): status ERROR. */
export function abandonRunSpan(span: Span, error: unknown): void {
  failSpan(span, error);
  span.end();
}

/**
 * One SERVER span per HTTP request, named `<method> <route pattern>` (never an id), with the
 * stable `http.*` attributes; an incoming W3C `traceparent` (through the propagator the
 * application installed with its SDK) makes it a child of the caller's span. Started and ended
 * by the request pipeline (http/pipeline.ts), around everything else the request does.
 */
import type { IncomingMessage } from "node:http";
import {
  type Context as OtelContext,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { Context } from "hono";
import { requestHeader } from "../http/request-header.ts";
import {
  ERROR_TYPE,
  HTTP_REQUEST_METHOD,
  HTTP_RESPONSE_STATUS_CODE,
  HTTP_ROUTE,
  URL_PATH,
  URL_SCHEME,
  USER_AGENT_ORIGINAL,
} from "./attributes.ts";
import { inTrace, tracer } from "./tracing.ts";

/** Reads the headers Node parsed (see requestHeader.ts): no WHATWG `Headers` built for a lookup. */
const headerGetter: TextMapGetter<Context> = {
  keys: (c) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (incoming?.headers !== undefined) return Object.keys(incoming.headers);
    const keys: string[] = [];
    c.req.raw.headers.forEach((_value, key) => {
      keys.push(key);
    });
    return keys;
  },
  get: (c, key) => requestHeader(c, key),
};

const SERVER = { kind: SpanKind.SERVER };

/** A request's span, and the context to run the rest of the request in. */
export interface RequestSpan {
  span: Span;
  context: OtelContext;
}

/**
 * Starts the span of a request; `undefined` when it belongs to no trace (no SDK installed), and
 * then nothing else was done: no header read, no context made. A span the sampler dropped (or
 * whose caller's `traceparent` said not to sample) still gives the context the rest of the
 * request runs in, so that the run's span and the agent's inherit that decision.
 */
export function startRequestSpan(c: Context): RequestSpan | undefined {
  const parent = propagation.extract(ROOT_CONTEXT, c, headerGetter);
  const method = c.req.method;
  // Named once the route is known (after the handler ran).
  const span = tracer.startSpan(method, SERVER, parent);
  if (!span.isRecording()) return inTrace(span) ? { span, context: trace.setSpan(parent, span) } : undefined;
  // One attribute at a time: no object to build and walk, no URL parsed (the path is in the string already).
  const url = c.req.url;
  const colon = url.indexOf(":");
  span.setAttribute(HTTP_REQUEST_METHOD, method);
  span.setAttribute(URL_PATH, pathOf(url, colon));
  span.setAttribute(URL_SCHEME, url.slice(0, colon));
  const agent = requestHeader(c, "user-agent");
  if (agent !== undefined) span.setAttribute(USER_AGENT_ORIGINAL, agent);
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Ends a request's span with the route pattern it matched (see route-pattern.ts) and the status
 * it answered; `error` when the request failed without an answer (Hono's error handler itself threw).
 */
export function endRequestSpan(
  span: Span,
  method: string,
  route: string | undefined,
  status: number | undefined,
  error?: unknown,
): void {
  if (route !== undefined) {
    span.setAttribute(HTTP_ROUTE, route);
    span.updateName(`${method} ${route}`);
  }
  if (status === undefined) {
    span.setAttribute(ERROR_TYPE, error instanceof Error ? error.name : "_OTHER");
    span.setStatus({ code: SpanStatusCode.ERROR });
  } else {
    span.setAttribute(HTTP_RESPONSE_STATUS_CODE, status);
    // A server span fails on 5xx only: a 4xx is the client's error.
    if (status >= 500) {
      span.setAttribute(ERROR_TYPE, String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

/** The path of an absolute URL (`scheme://authority/path?query#fragment`), as sent: not decoded. */
function pathOf(url: string, colon: number): string {
  const start = url.indexOf("/", colon + 3);
  if (start === -1) return "/";
  let end = url.length;
  for (let i = start; i < end; i++) {
    const code = url.charCodeAt(i);
    // '?' or '#'
    if (code === 63 || code === 35) end = i;
  }
  return url.slice(start, end);
}

/**
 * One SERVER span per HTTP request, named `<method> <route pattern>` (never an id), with the
 * stable `http.*` attributes; an incoming W3C `traceparent` (through the propagator the
 * application installed with its SDK) makes it a child of the caller's span.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { MiddlewareHandler } from "hono";
import { routePattern } from "../http/route-pattern.ts";
import {
  ERROR_TYPE,
  HTTP_REQUEST_METHOD,
  HTTP_RESPONSE_STATUS_CODE,
  HTTP_ROUTE,
  URL_PATH,
  URL_SCHEME,
  USER_AGENT_ORIGINAL,
} from "./attributes.ts";
import { tracer } from "./tracing.ts";

const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => {
    const keys: string[] = [];
    headers.forEach((_value, key) => {
      keys.push(key);
    });
    return keys;
  },
  get: (headers, key) => headers.get(key) ?? undefined,
};

const SERVER = { kind: SpanKind.SERVER };

/** The middleware; first in the chain, so that every other one runs inside the request's span. */
export function httpSpans(): MiddlewareHandler {
  return async (c, next) => {
    const headers = c.req.raw.headers;
    const parent = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
    const method = c.req.method;
    // Named once the route is known (after the handler ran).
    const span = tracer.startSpan(method, SERVER, parent);
    if (!span.isRecording()) return next();
    // One attribute at a time: no object to build and walk, no URL parsed (the path is in the string already).
    const url = c.req.url;
    const colon = url.indexOf(":");
    span.setAttribute(HTTP_REQUEST_METHOD, method);
    span.setAttribute(URL_PATH, pathOf(url, colon));
    span.setAttribute(URL_SCHEME, url.slice(0, colon));
    const agent = headers.get("user-agent");
    if (agent !== null) span.setAttribute(USER_AGENT_ORIGINAL, agent);
    try {
      await context.with(trace.setSpan(parent, span), next);
    } catch (error) {
      // Hono answers errors itself (onError); one that still comes through failed the request.
      span.setAttribute(ERROR_TYPE, error instanceof Error ? error.name : "_OTHER");
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      const route = routePattern(c);
      if (route !== undefined) {
        span.setAttribute(HTTP_ROUTE, route);
        span.updateName(`${method} ${route}`);
      }
      const status = c.res.status;
      span.setAttribute(HTTP_RESPONSE_STATUS_CODE, status);
      // A server span fails on 5xx only: a 4xx is the client's error.
      if (status >= 500) {
        span.setAttribute(ERROR_TYPE, String(status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    }
  };
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

/**
 * What every request of the app goes through, as one function around its route's handler: the
 * instance header, the instance's start, the request's span, CORS, authentication, the body
 * limit, errors turned into answers, the request counted, an unread body finished.
 *
 * Not a chain of `app.use()` middleware: Hono runs a route that is the only handler matched
 * without building a chain, where each middleware costs an async step (a promise, and with an
 * OpenTelemetry SDK installed a context hook) on every request. The order is the one the chain
 * had; CORS and authentication stay Hono middleware, run here in place.
 */
import { context } from "@opentelemetry/api";
import type { Context, Handler, MiddlewareHandler } from "hono";
import type { Metrics } from "../metrics/metrics.ts";
import { UNMATCHED_ROUTE } from "../metrics/names.ts";
import { endRequestSpan, startRequestSpan } from "../trace/http-spans.ts";
import { bodyOverLimit, countBody, finishUnreadBody } from "./body.ts";
import { routePattern } from "./route-pattern.ts";

/** Who may call a route: anyone (`/ping`, the API's description), or a client with a key when keys are set. */
export type Access = "open" | "keyed";

export interface PipelineOptions {
  /** Set as the `acp-instance` header of every answer. */
  instanceHeader: [name: string, value: string];
  /** Called on every request; starts the instance's heartbeat the first time. */
  onRequest: () => void;
  metrics: Metrics | undefined;
  maxBodyBytes: number;
  cors: MiddlewareHandler | undefined;
  auth: MiddlewareHandler | undefined;
  /** The answer to an error a handler threw (the app's `onError`). */
  onError: (error: Error, c: Context) => Response | Promise<Response>;
}

/** Wraps route handlers: `serve(handler, access)` is the handler to register. */
export type Serve = (handler: Handler, access: Access) => Handler;

export function pipeline(options: PipelineOptions): Serve {
  const { instanceHeader, onRequest, metrics, maxBodyBytes, cors, auth, onError } = options;
  const [headerName, headerValue] = instanceHeader;
  const limitChunked = countBody(maxBodyBytes);

  const answerError = (error: unknown, c: Context): Response | Promise<Response> =>
    onError(error instanceof Error ? error : new Error(String(error)), c);

  return (handler, access) => {
    /** The handler, behind the body limit; a thrown error becomes its answer. Not async: no promise of its own. */
    function handle(c: Context): Response | Promise<Response> {
      try {
        if (access === "keyed") {
          const refused = bodyOverLimit(c, maxBodyBytes);
          if (refused === "chunked")
            return around(limitChunked, c, (c) => handler(c, noNext) as Promise<Response>).catch((error) =>
              answerError(error, c),
            );
          if (refused !== undefined) return refused;
        }
        const answer = handler(c, noNext) as Response | Promise<Response>;
        return answer instanceof Promise ? answer.catch((error) => answerError(error, c)) : answer;
      } catch (error) {
        return answerError(error, c);
      }
    }
    /** CORS first (a preflight carries no key), then authentication, as the middleware chain had them. */
    const keyed = access === "keyed" && auth !== undefined;
    const guarded = (c: Context): Response | Promise<Response> =>
      keyed ? around(auth, c, handle).catch((error) => answerError(error, c)) : handle(c);
    const inner =
      cors === undefined ? guarded : (c: Context) => around(cors, c, guarded).catch((error) => answerError(error, c));

    return async function served(c: Context): Promise<Response> {
      c.header(headerName, headerValue);
      onRequest();
      const span = startRequestSpan(c);
      let response: Response;
      try {
        response = span === undefined ? await inner(c) : await context.with(span.context, inner, undefined, c);
      } catch (error) {
        // Only the error handler itself failing comes here.
        if (span !== undefined) endRequestSpan(span.span, c.req.method, routePattern(c), undefined, error);
        throw error;
      }
      if (span !== undefined || metrics !== undefined) {
        const route = routePattern(c);
        if (span !== undefined) endRequestSpan(span.span, c.req.method, route, response.status);
        metrics?.httpRequest(c.req.method, route ?? UNMATCHED_ROUTE, response.status);
      }
      if (finishUnreadBody(c, maxBodyBytes) === "close") {
        c.res = response;
        c.header("connection", "close");
        return c.res;
      }
      return response;
    };
  };
}

/** Route handlers here never call `next`: they answer. */
const noNext = async (): Promise<void> => {};

/**
 * Runs Hono middleware around `then` as Hono's chain would: the middleware's own answer (a
 * preflight, a 401) when it gives one, else the one `then` made, as the middleware left it.
 */
async function around(
  middleware: MiddlewareHandler,
  c: Context,
  then: (c: Context) => Promise<Response> | Response,
): Promise<Response> {
  const own = await middleware(c, async () => {
    c.res = await then(c);
  });
  return own instanceof Response ? own : c.res;
}

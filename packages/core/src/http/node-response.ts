/**
 * The Node response under a request served by `@hono/node-server` (its `c.env.outgoing`), for
 * the one place that writes to it directly: an SSE stream that has caught up (see sse.ts). Other
 * runtimes, and `app.request()` in tests, have none, and their streams go through the web
 * `ReadableStream` alone.
 */
import type { Context } from "hono";

/** What sse.ts uses of Node's `ServerResponse` (or `Http2ServerResponse`). */
export interface NodeResponse {
  readonly headersSent: boolean;
  readonly writableNeedDrain: boolean;
  write(chunk: Uint8Array): boolean;
  once(event: "drain", listener: () => void): unknown;
}

/** The request's Node response, when it is served by Node through `@hono/node-server`. */
export function nodeResponseOf(c: Context): NodeResponse | undefined {
  const outgoing = (c.env as { outgoing?: Partial<NodeResponse> } | undefined)?.outgoing;
  if (outgoing === undefined || typeof outgoing.write !== "function" || typeof outgoing.once !== "function")
    return undefined;
  return outgoing as NodeResponse;
}

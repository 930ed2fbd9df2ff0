/**
 * Streams a run's events as Server-Sent Events. Every frame carries `id: <seq>` (the event's
 * position in its run), so a client whose connection breaks can come back to any instance with
 * `Last-Event-ID` and get exactly what it missed.
 *
 * The body is a plain pull-driven ReadableStream over the follower rather than hono's
 * `streamSSE`: an idle stream then costs about a third of the memory (no TransformStream and
 * writer per stream), the next event is read only when the client has taken the previous one
 * (backpressure), and a client that goes away cancels the stream, which ends the follower.
 */
import type { Context } from "hono";
import { toErrorModel } from "../errors.ts";
import type { Event } from "../models.ts";
import { followEvents } from "../run/follow.ts";
import type { Store } from "../store.ts";

/** Run events after which a stream of this kind ends. */
export type StreamEnd = (event: Event) => boolean;

export const endsAtTerminal: StreamEnd = (event) =>
  event.type === "run.completed" || event.type === "run.failed" || event.type === "run.cancelled";
export const endsAtTerminalOrAwait: StreamEnd = (event) => endsAtTerminal(event) || event.type === "run.awaiting";

const encoder = new TextEncoder();

/** One SSE frame; JSON never contains a raw newline, so the data fits one `data:` line. */
function frame(data: string, id?: number): Uint8Array {
  return encoder.encode(id === undefined ? `data: ${data}\n\n` : `data: ${data}\nid: ${id}\n\n`);
}

export function streamRunEvents(c: Context, store: Store, runId: string, afterSeq: number, ends: StreamEnd): Response {
  const abort = new AbortController();
  const events = followEvents(store, runId, { afterSeq, signal: abort.signal });
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await events.next();
        if (next.done) return controller.close();
        controller.enqueue(frame(JSON.stringify(next.value.event), next.value.seq));
        if (ends(next.value.event)) {
          await events.return(undefined);
          controller.close();
        }
      } catch (error) {
        // Never the raw error: a client sees an ACP error event, the log gets the details.
        console.error(`[acp] stream of run ${runId} broke: ${(error as Error).message}`);
        controller.enqueue(frame(JSON.stringify({ type: "error", error: toErrorModel(error) })));
        controller.close();
      }
    },
    async cancel() {
      abort.abort();
      await events.return(undefined).catch(() => {});
    },
  });
  return c.body(body, 200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    // Proxies such as nginx would otherwise buffer the stream.
    "x-accel-buffering": "no",
  });
}

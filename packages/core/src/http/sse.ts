/**
 * Streams a run's events as Server-Sent Events. Every frame carries `id: <seq>` (the event's
 * position in its run), so a client whose connection breaks can come back to any instance with
 * `Last-Event-ID` and get exactly what it missed.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { toErrorModel } from "../errors.ts";
import type { Event } from "../models.ts";
import { followEvents } from "../run/follow.ts";
import type { Store } from "../store.ts";

/** Run events after which a stream of this kind ends. */
export type StreamEnd = (event: Event) => boolean;

export const endsAtTerminal: StreamEnd = (event) => event.type === "run.completed" || event.type === "run.failed" || event.type === "run.cancelled";
export const endsAtTerminalOrAwait: StreamEnd = (event) => endsAtTerminal(event) || event.type === "run.awaiting";

export function streamRunEvents(c: Context, store: Store, runId: string, afterSeq: number, ends: StreamEnd): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    try {
      for await (const { seq, event } of followEvents(store, runId, { afterSeq, signal: abort.signal })) {
        await stream.writeSSE({ id: String(seq), data: JSON.stringify(event) });
        if (ends(event)) break;
      }
    } catch (error) {
      // Errors never escape to streamSSE, which would send their raw message to the client.
      if (!abort.signal.aborted) {
        console.error(`[acp] stream of run ${runId} broke:`, error);
        await stream.writeSSE({ data: JSON.stringify({ type: "error", error: toErrorModel(error) }) }).catch(() => {});
      }
    }
  });
}

/**
 * The output of a run that has not settled, told by its event log. The record's output is
 * written only at transitions (await, end): rewriting it on every completed message would cost
 * O(n²) bytes over a long run. Reading the output of a running run therefore pays for its log,
 * and writing an event stays O(1).
 */
import type { Message, MessagePart } from "../models.ts";
import type { Store } from "../store.ts";

/** Events read per store call. */
const PAGE = 1000;

/**
 * The run's completed messages in order; with `open`, then the message it is streaming, with the
 * parts yielded so far and no `completed_at` (as the reference shows it).
 */
export async function outputFromLog(store: Store, runId: string, { open = true } = {}): Promise<Message[]> {
  const output: Message[] = [];
  let streaming: { message: Message; parts: MessagePart[] } | undefined;
  let afterSeq = 0;
  for (;;) {
    const page = await store.readEvents(runId, afterSeq, PAGE);
    for (const { seq, event } of page) {
      afterSeq = seq;
      if (event.type === "message.created") streaming = { message: event.message, parts: [] };
      else if (event.type === "message.part") streaming?.parts.push(event.part);
      else if (event.type === "message.completed") {
        output.push(event.message);
        streaming = undefined;
      }
    }
    if (page.length < PAGE) break;
  }
  // The created event of a whole message lists its parts, and its part events follow it: the
  // parts come from those events only, so that they count once.
  if (open && streaming !== undefined) output.push({ ...streaming.message, parts: streaming.parts });
  return output;
}

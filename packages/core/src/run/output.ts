/**
 * The output of a run that has not settled, told by its event log. The record's output is
 * written only at transitions (await, end): rewriting it on every completed message would cost
 * O(n²) bytes over a long run. Reading the output of a running run therefore pays for its log,
 * and writing an event stays O(1). {@link RunOutputs} keeps what it read, so that reading the
 * same run again (a client polling `GET /runs/{id}`) reads only the events since.
 */
import type { Message, MessagePart, Run } from "../models.ts";
import type { Store } from "../store.ts";

/** Events read per store call. */
const PAGE = 1000;

/**
 * Roughly the bytes of the outputs {@link RunOutputs} keeps, all runs together; beyond it the
 * least recently read go. A run whose output alone weighs more is read whole every time.
 */
const KEPT_OUTPUT_BYTES = 16 * 1024 * 1024;

/** What an object of a message or a part costs besides its text, roughly. */
const OBJECT_BYTES = 128;

/**
 * A run's log folded into its output, up to and including the event `afterSeq`. Never changed
 * once made: concurrent readers share it.
 */
interface Fold {
  /** The run's creation time: a run id stored again once its expired run is gone is another run. */
  createdAt: string;
  afterSeq: number;
  completed: readonly Message[];
  /** The message being streamed: its created event, and the parts that followed it so far. */
  streaming: { message: Message; parts: readonly MessagePart[] } | undefined;
  /** Roughly the bytes it holds. */
  bytes: number;
}

const emptyFold = (createdAt: string): Fold => ({
  createdAt,
  afterSeq: 0,
  completed: [],
  streaming: undefined,
  bytes: 0,
});

const partsBytes = (parts: readonly MessagePart[]): number =>
  parts.reduce((sum, part) => sum + OBJECT_BYTES + (part.content?.length ?? 0), 0);

/** `start` carried on with the events after it, to the end of the log. */
async function foldLog(store: Store, runId: string, start: Fold): Promise<Fold> {
  const completed = [...start.completed];
  let streaming = start.streaming && { message: start.streaming.message, parts: [...start.streaming.parts] };
  let { afterSeq, bytes } = start;
  for (;;) {
    const page = await store.readEvents(runId, afterSeq, PAGE);
    for (const { seq, event } of page) {
      afterSeq = seq;
      if (event.type === "message.created") {
        if (streaming !== undefined) bytes -= partsBytes(streaming.parts);
        streaming = { message: event.message, parts: [] };
      } else if (event.type === "message.part") {
        if (streaming !== undefined) {
          streaming.parts.push(event.part);
          bytes += partsBytes([event.part]);
        }
      } else if (event.type === "message.completed") {
        // The completed message replaces the parts counted while it streamed.
        if (streaming !== undefined) bytes -= partsBytes(streaming.parts);
        completed.push(event.message);
        bytes += OBJECT_BYTES + partsBytes(event.message.parts);
        streaming = undefined;
      }
    }
    if (page.length < PAGE) break;
  }
  return { createdAt: start.createdAt, afterSeq, completed, streaming, bytes };
}

/**
 * The output a fold tells: its completed messages in order; with `open`, then the message being
 * streamed, with the parts yielded so far and no `completed_at` (as the reference shows it).
 * The created event of a whole message lists its parts, and its part events follow it: the parts
 * come from those events only, so that they count once.
 */
function outputOf(fold: Fold, open: boolean): Message[] {
  const output = [...fold.completed];
  if (open && fold.streaming !== undefined)
    output.push({ ...fold.streaming.message, parts: [...fold.streaming.parts] });
  return output;
}

/** The run's output from its whole log (see {@link outputOf}); nothing kept. */
export async function outputFromLog(store: Store, runId: string, { open = true } = {}): Promise<Message[]> {
  return outputOf(await foldLog(store, runId, emptyFold("")), open);
}

/**
 * The outputs of running runs as last read on this instance, the least recently read first, so
 * that a run read again costs the events since, not its whole log. Events are only ever appended
 * to a run's log, so carrying a fold on is the same as reading the log again.
 */
export class RunOutputs {
  readonly #store: Store;
  readonly #maxBytes: number;
  readonly #folds = new Map<string, Fold>();
  #bytes = 0;

  constructor(store: Store, maxBytes = KEPT_OUTPUT_BYTES) {
    this.#store = store;
    this.#maxBytes = maxBytes;
  }

  /** The output of `run` so far (the message being streamed included), from its log. */
  async read(run: Run): Promise<Message[]> {
    const kept = this.#folds.get(run.run_id);
    const start = kept?.createdAt === run.created_at ? kept : emptyFold(run.created_at);
    const fold = await foldLog(this.#store, run.run_id, start);
    this.#keep(run.run_id, fold);
    return outputOf(fold, true);
  }

  /** Drops what is kept of a run (it settled: its record holds its output). */
  forget(runId: string): void {
    const kept = this.#folds.get(runId);
    if (kept === undefined) return;
    this.#folds.delete(runId);
    this.#bytes -= kept.bytes;
  }

  /** Bytes kept now, roughly. */
  get bytes(): number {
    return this.#bytes;
  }

  #keep(runId: string, fold: Fold): void {
    const kept = this.#folds.get(runId);
    // A read that ran at the same time may have got further: the furthest is kept.
    const latest =
      kept !== undefined && kept.createdAt === fold.createdAt && kept.afterSeq >= fold.afterSeq ? kept : fold;
    this.forget(runId);
    if (latest.bytes > this.#maxBytes) return;
    // Re-inserted: the most recently read is last.
    this.#folds.set(runId, latest);
    this.#bytes += latest.bytes;
    for (const [id, old] of this.#folds) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#folds.delete(id);
      this.#bytes -= old.bytes;
    }
  }
}

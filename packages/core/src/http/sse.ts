/**
 * Streams a run's events as Server-Sent Events. Every frame carries `id: <seq>` (the event's
 * position in its run), so a client whose connection breaks can come back to any instance with
 * `Last-Event-ID` and get exactly what it missed.
 *
 * The body is a plain pull-driven ReadableStream over a follower of the run's feed (see
 * {@link RunFeeds}: one reader per run per instance, whatever the number of streams) rather than
 * hono's `streamSSE`: an idle stream then costs about a third of the memory (no TransformStream
 * and writer per stream), the next event is taken only when the client has taken the previous
 * one (backpressure; a client far behind reads on its own, holding nobody back), and a client
 * that goes away cancels the stream, which ends the follower. Per stream there is no timer, no
 * subscription and no buffer: the follower's position, and the frames the feed shares. An idle
 * stream holds no pending promise either: its follower wakes it ({@link Follower.poll}). Events
 * a stream has at hand at once (a burst the feed read, or a stream behind) go out as one chunk
 * of their frames (one write to the socket, not one per event), at most `CHUNK_CHARS` and a frame,
 * encoded at once (one buffer per chunk: per-frame buffers that live until the feed drops its
 * events leave the process's malloc heap fragmented once they are freed).
 *
 * Served by Node (`@hono/node-server`), a stream writes its chunks to Node's response itself,
 * with Node's own back-pressure (`drain`), instead of through the web stream's queue, promise and
 * reader, which cost about a seventh of the CPU of delivering an event to a thousand streams. The
 * web stream stays, empty, for the response's headers (written by the server from the
 * `Response`, with whatever middleware added) and its end (closing it ends the response after
 * the last chunk written). The stream sends nothing until those headers are out, then decides
 * once: directly when the server reads this stream itself, else (middleware put another body
 * around it, which must see every chunk) through the web stream, as on other runtimes. Nothing
 * is ever sent both ways, so nothing can overtake a chunk still in the web stream.
 *
 * The open streams of an app are counted ({@link SseStreams}: at most `limits.maxStreams`), and
 * one shared timer sends a comment line to each stream that sent nothing for a while, so that
 * proxies keep idle streams open. Per stream that costs one small entry in a set, not a timer.
 */
import type { Context } from "hono";
import { toErrorModel } from "../errors.ts";
import { atCapacity } from "../limits.ts";
import { consoleLogger, type Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Event } from "../models.ts";
import { type FedEvent, type Follower, type FollowerSink, type RunFeeds, WAITING } from "../run/run-feed.ts";
import { type NodeResponse, nodeResponseOf } from "./node-response.ts";

/** Run events after which a stream of this kind ends. */
export type StreamEnd = (event: Event) => boolean;

export const endsAtTerminal: StreamEnd = (event) =>
  event.type === "run.completed" || event.type === "run.failed" || event.type === "run.cancelled";
export const endsAtTerminalOrAwait: StreamEnd = (event) => endsAtTerminal(event) || event.type === "run.awaiting";

const encoder = new TextEncoder();

/** One SSE frame's text; JSON never contains a raw newline, so the data fits one `data:` line. */
function frameText(data: string, id?: number): string {
  return id === undefined ? `data: ${data}\n\n` : `data: ${data}\nid: ${id}\n\n`;
}

function frame(data: string, id?: number): Uint8Array {
  return encoder.encode(frameText(data, id));
}

/** Most frames, and characters, of a chunk that sends several events at hand at once. */
const CHUNK_FRAMES = 64;
/** In characters of the frames' text (the bytes of ASCII text). */
const CHUNK_CHARS = 16 * 1024;

/** The event's frame as text, made once per event whatever the number of streams that send it. */
function text(next: FedEvent): string {
  next.text ??= frameText(JSON.stringify(next.event), next.seq);
  return next.text;
}

/** The event's frame, encoded once per event whatever the number of streams that send it alone. */
function encoded(next: FedEvent): Uint8Array {
  next.frame ??= encoder.encode(text(next));
  return next.frame;
}

/** Turns a stream served by Node waits for its response's headers before it sends through the web stream instead. */
const HEADER_WAITS = 3;

/** How often an idle SSE stream gets a comment line, unless `createApp()`'s `sseKeepAliveMs` says otherwise. */
export const SSE_KEEP_ALIVE_MS = 15_000;

const KEEP_ALIVE = encoder.encode(": keep-alive\n\n");

/** One open stream, as {@link SseStreams} sees it. */
export interface OpenStream {
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** Node's response, once the stream writes to it directly (see above). */
  direct: NodeResponse | undefined;
  /** Whether it sent something since the last keep-alive tick. */
  busy: boolean;
}

/**
 * Sends `chunk`: written to Node's response when the stream writes directly, else enqueued.
 * Whether the stream may take more now (false: Node's response wants a `drain` first).
 */
function deliver(
  controller: ReadableStreamDefaultController<Uint8Array>,
  direct: NodeResponse | undefined,
  chunk: Uint8Array,
): boolean {
  if (direct !== undefined) return direct.write(chunk);
  controller.enqueue(chunk);
  return true;
}

/** The open SSE responses of one app: their count, capped, and their keep-alive comments. */
export class SseStreams {
  readonly #open = new Set<OpenStream>();
  #timer: NodeJS.Timeout | undefined;
  /** Counts the open streams in `acp_sse_streams_open`, when the app has metrics. */
  metrics: Metrics | undefined;

  constructor(
    readonly maxStreams: number,
    readonly keepAliveMs: number,
    /** Where a stream that broke is logged. */
    readonly logger: Logger = consoleLogger,
  ) {}

  get size(): number {
    return this.#open.size;
  }

  /**
   * Takes a place for a stream, or throws a 503 when all are taken. Taken before the work the
   * stream is for (a run to create), so that a refused stream starts nothing.
   */
  reserve(): OpenStream {
    if (this.#open.size >= this.maxStreams) throw atCapacity("maxStreams", this.maxStreams);
    const stream: OpenStream = { controller: undefined, direct: undefined, busy: true };
    this.#open.add(stream);
    this.metrics?.sseOpened();
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.keepAliveMs);
      this.#timer.unref();
    }
    return stream;
  }

  /** Gives a place back; idempotent. */
  release(stream: OpenStream): void {
    if (this.#open.delete(stream)) this.metrics?.sseClosed();
    stream.controller = undefined;
    stream.direct = undefined;
    if (this.#open.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #tick(): void {
    for (const stream of this.#open) {
      const { controller, direct } = stream;
      // A client that does not read gets nothing more queued: its connection is not idle.
      const full = direct !== undefined ? direct.writableNeedDrain : (controller?.desiredSize ?? 0) <= 0;
      if (stream.busy || controller === undefined || full) {
        stream.busy = false;
        continue;
      }
      try {
        deliver(controller, direct, KEEP_ALIVE);
      } catch {
        this.release(stream);
      }
    }
  }
}

/**
 * The source of one SSE body: its methods are the stream's (called with it as `this`), so a
 * stream costs this object and its follower, not a set of closures. It is also the follower's
 * sink ({@link Follower.poll}): an idle stream waits without a pending promise; woken, it sends
 * what the follower has (the stream still wants it: only a pull starts a wait).
 */
class RunEventSource implements UnderlyingDefaultSource<Uint8Array>, FollowerSink {
  /** Node's response asked to wait for `drain` before the next write. */
  #draining = false;

  constructor(
    readonly follower: Follower,
    readonly runId: string,
    readonly ends: StreamEnd,
    readonly streams: SseStreams,
    readonly place: OpenStream,
  ) {}

  /**
   * Node's response the stream may write to, and the request's context and answer to check that
   * the server reads this very stream ({@link #decide}); dropped once decided.
   */
  candidate: { node: NodeResponse; c: Context; response: Response } | undefined;
  /** Turns waited for the response's headers, while undecided. */
  #waits = 0;
  /** A turn's wait for the headers is scheduled. */
  #waiting = false;

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.place.controller = controller;
  }

  pull(): void {
    this.#send();
  }

  woken(error?: unknown): void {
    if (error === undefined) {
      this.#send();
      return;
    }
    const controller = this.place.controller;
    // Cancelled meanwhile (the client went away): nobody to tell, and nothing broke.
    if (controller === undefined || this.follower.closed) return;
    // Never the raw error: a client sees an ACP error event, the log gets the details.
    this.streams.logger.error({ run_id: this.runId, reason: (error as Error).message }, "the run's event stream broke");
    const direct = this.place.direct;
    this.#end();
    deliver(controller, direct, frame(JSON.stringify({ type: "error", error: toErrorModel(error) })));
    controller.close();
  }

  cancel(): void {
    this.#end();
  }

  /**
   * Sends what the follower has at hand, or waits for it. Through the web stream, one chunk: the
   * stream pulls again when it wants more, maybe inside `enqueue` (which comes back here: the
   * follower has moved past what is sent before it). Written directly, chunk after chunk until
   * the follower has nothing at hand or Node's response asks to wait for `drain`.
   */
  #send(): void {
    for (;;) {
      // Released: the stream ended or was cancelled.
      const controller = this.place.controller;
      if (controller === undefined || this.#draining) return;
      if (this.candidate !== undefined && !this.#decide()) return;
      const direct = this.place.direct;
      const next = this.follower.poll(this);
      if (next === WAITING) return;
      if (next === undefined) {
        this.#end();
        controller.close();
        return;
      }
      if (!this.#sendFrom(next, controller, direct) || direct === undefined) return;
    }
  }

  /** Sends `next` and what follows it at hand as one chunk; whether the stream goes on. */
  #sendFrom(
    next: FedEvent,
    controller: ReadableStreamDefaultController<Uint8Array>,
    direct: NodeResponse | undefined,
  ): boolean {
    this.place.busy = true;
    let last = next;
    let chunk: Uint8Array;
    // Events already at hand go with it in one chunk (one write to the socket for a burst,
    // not one per event), encoded at once from their texts (one buffer, not one per frame and
    // one to join them); bounded, so a stream never holds more than a chunk of frames.
    let more = this.ends(next.event) ? undefined : this.follower.take();
    if (more === undefined) chunk = encoded(next);
    else {
      let frames = text(next);
      let count = 1;
      while (more !== undefined) {
        frames += text(more);
        count++;
        last = more;
        if (this.ends(more.event) || count >= CHUNK_FRAMES || frames.length >= CHUNK_CHARS) break;
        more = this.follower.take();
      }
      // Streams woken together send the same burst: it is encoded once, kept on its last event.
      const burst = last.burst;
      if (burst !== undefined && burst.from === next.seq) chunk = burst.frames;
      else {
        chunk = encoder.encode(frames);
        last.burst = { from: next.seq, frames: chunk };
      }
    }
    const ends = this.ends(last.event);
    if (ends) this.#end();
    const accepted = deliver(controller, direct, chunk);
    if (ends) controller.close();
    else if (!accepted && direct !== undefined) this.#waitForDrain(direct);
    return !ends;
  }

  /**
   * Decides, once Node's response has its headers out, whether the stream writes to it directly:
   * when the server reads this stream itself, that is when no middleware finalized the answer or
   * the final answer is this very one (not compared by body: reading a `Response`'s body there
   * would build it again around a stream the server has locked; an answer middleware copied, for
   * its CORS headers, stays on the web stream). Until the headers are out, false: nothing is sent,
   * and the stream looks again a turn later (the server writes them within the turn the answer is
   * returned in); after a few turns without, it stays on the web stream.
   */
  #decide(): boolean {
    const candidate = this.candidate!;
    if (!candidate.node.headersSent && this.#waits < HEADER_WAITS) {
      if (!this.#waiting) {
        this.#waiting = true;
        this.#waits++;
        setImmediate(RunEventSource.#lookAgain, this);
      }
      return false;
    }
    this.candidate = undefined;
    const { c, response, node } = candidate;
    if (node.headersSent && (!c.finalized || c.res === response)) this.place.direct = node;
    return true;
  }

  static #lookAgain(source: RunEventSource): void {
    source.#waiting = false;
    source.#send();
  }

  /** Node's response holds more than it wants: the next write after it drained. */
  #waitForDrain(direct: NodeResponse): void {
    this.#draining = true;
    direct.once("drain", () => {
      this.#draining = false;
      this.#send();
    });
  }

  /** Ends the follower and gives the stream's place back; idempotent. */
  #end(): void {
    this.streams.release(this.place);
    void this.follower.close();
  }
}

/**
 * The SSE response of a run's events after `afterSeq`, until `ends` says so, read through the
 * instance's `feeds`. `place` is the stream's place in `streams` (see {@link SseStreams.reserve}),
 * given back when the stream ends.
 */
export function streamRunEvents(
  c: Context,
  feeds: RunFeeds,
  runId: string,
  afterSeq: number,
  ends: StreamEnd,
  streams: SseStreams,
  place: OpenStream = streams.reserve(),
): Response {
  const source = new RunEventSource(feeds.follow(runId, afterSeq), runId, ends, streams, place);
  const response = c.body(new ReadableStream<Uint8Array>(source), 200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    // Proxies such as nginx would otherwise buffer the stream.
    "x-accel-buffering": "no",
  });
  const node = nodeResponseOf(c);
  // The stream's first pull comes after this tick.
  if (node !== undefined) source.candidate = { node, c, response };
  return response;
}

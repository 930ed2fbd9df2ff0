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
 * subscription and no buffer: the follower's position, and the frames the feed shares. Events
 * a stream has at hand at once (a burst the feed read, or a stream behind) go out as one chunk
 * of their frames (one write to the socket, not one per event), at most `CHUNK_BYTES` and a frame.
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
import type { FedEvent, Follower, RunFeeds } from "../run/run-feed.ts";

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

/** Most frames, and bytes, of a chunk that sends several events at hand at once. */
const CHUNK_FRAMES = 64;
const CHUNK_BYTES = 16 * 1024;

/** The event's frame, encoded once per event whatever the number of streams that send it. */
function encoded(next: FedEvent): Uint8Array {
  next.frame ??= frame(JSON.stringify(next.event), next.seq);
  return next.frame;
}

function concat(frames: Uint8Array[], size: number): Uint8Array {
  const chunk = new Uint8Array(size);
  let at = 0;
  for (const part of frames) {
    chunk.set(part, at);
    at += part.byteLength;
  }
  return chunk;
}

/** How often an idle SSE stream gets a comment line, unless `createApp()`'s `sseKeepAliveMs` says otherwise. */
export const SSE_KEEP_ALIVE_MS = 15_000;

const KEEP_ALIVE = encoder.encode(": keep-alive\n\n");

/** One open stream, as {@link SseStreams} sees it. */
export interface OpenStream {
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** Whether it sent something since the last keep-alive tick. */
  busy: boolean;
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
    const stream: OpenStream = { controller: undefined, busy: true };
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
    if (this.#open.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #tick(): void {
    for (const stream of this.#open) {
      const controller = stream.controller;
      // A client that does not read gets nothing more queued: its connection is not idle.
      if (stream.busy || controller === undefined || (controller.desiredSize ?? 0) <= 0) {
        stream.busy = false;
        continue;
      }
      try {
        controller.enqueue(KEEP_ALIVE);
      } catch {
        this.release(stream);
      }
    }
  }
}

/**
 * The source of one SSE body: its methods are the stream's (called with it as `this`), so a
 * stream costs this object and its follower, not a set of closures.
 */
class RunEventSource implements UnderlyingDefaultSource<Uint8Array> {
  constructor(
    readonly follower: Follower,
    readonly runId: string,
    readonly ends: StreamEnd,
    readonly streams: SseStreams,
    readonly place: OpenStream,
  ) {}

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.place.controller = controller;
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      const next = await this.follower.next();
      // Cancelled meanwhile (the client went away): the stream is closed already.
      if (this.follower.closed) return;
      if (next === undefined) return this.#close(controller);
      this.place.busy = true;
      let last = next;
      let chunk = encoded(next);
      // Events already at hand go with it in one chunk (one write to the socket for a burst,
      // not one per event); bounded, so a stream never holds more than a chunk of frames.
      let more = this.ends(next.event) ? undefined : this.follower.take();
      if (more !== undefined) {
        const frames = [chunk];
        let size = chunk.byteLength;
        while (more !== undefined) {
          const encodedMore = encoded(more);
          frames.push(encodedMore);
          size += encodedMore.byteLength;
          last = more;
          if (this.ends(more.event) || frames.length >= CHUNK_FRAMES || size >= CHUNK_BYTES) break;
          more = this.follower.take();
        }
        chunk = concat(frames, size);
      }
      controller.enqueue(chunk);
      if (this.ends(last.event)) this.#close(controller);
    } catch (error) {
      // Cancelled while a read was going on: nobody to tell, and nothing broke.
      if (this.follower.closed) return;
      // Never the raw error: a client sees an ACP error event, the log gets the details.
      this.streams.logger.error(
        { run_id: this.runId, reason: (error as Error).message },
        "the run's event stream broke",
      );
      controller.enqueue(frame(JSON.stringify({ type: "error", error: toErrorModel(error) })));
      this.#close(controller);
    }
  }

  cancel(): void {
    this.streams.release(this.place);
    void this.follower.close();
  }

  #close(controller: ReadableStreamDefaultController<Uint8Array>): void {
    void this.follower.close();
    this.streams.release(this.place);
    controller.close();
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
  const body = new ReadableStream<Uint8Array>(source);
  return c.body(body, 200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    // Proxies such as nginx would otherwise buffer the stream.
    "x-accel-buffering": "no",
  });
}

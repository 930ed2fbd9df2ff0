/**
 * A process of fan-out followers (scenarios/fanout.ts forks a few): SSE clients of one run, kept
 * off the measuring process so that the lag of an event loop serving hundreds of streams is
 * counted as this process's, not hidden in the delays. For every `message.part` of the run it
 * records its arrival (the wall clock, read first thing when a chunk comes in) minus the time the
 * part says it was written, and sends every delay back when the run has ended.
 *
 * The frames are read with as little work as possible: no JSON parse, only the event's type and
 * the part's timestamps, found by position. A frame may arrive split over several chunks, and
 * carry its `id:` line before or after its `data:` line.
 *
 * Messages: the parent sends {@link FollowerCommand}s, this process answers {@link FollowerReport}s
 * (over IPC with `serialization: "advanced"`, so that the delays travel as a Float64Array).
 */
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { wallClockMs } from "./clock.ts";

export type FollowerCommand =
  /** Opens `count` streams of `runId` on `url`, at most `concurrency` attaching at a time. */
  | { type: "follow"; url: string; runId: string; count: number; concurrency: number }
  /** The run is about to move: from now on the event-loop delay is measured. */
  | { type: "start" };

export type FollowerReport =
  /** The process is up (its modules loaded). */
  | { type: "ready" }
  /** `attached` of this process's streams have the run's `run.awaiting` so far. */
  | { type: "attached"; attached: number }
  /** Every stream has ended. */
  | { type: "done"; result: FollowersResult }
  | { type: "error"; message: string };

export interface FollowersResult {
  /** Write-to-arrival delay of every part at every stream, in ms. */
  delays: Float64Array;
  /** Yield-to-arrival delay of the same parts, in ms (the part's first timestamp). */
  fromYield: Float64Array;
  /** The same delays without each stream's first {@link SETTLED_AFTER} parts (the start of the run's output). */
  settled: Float64Array;
  /** Per part (by its write time), the shortest delay over this process's streams. */
  earliest: Map<number, number>;
  /** Parts that carried no write time (written by a store call the bench server did not stamp). */
  unstamped: number;
  /** Parts received, per stream. */
  parts: number[];
  /** Streams that ended with `run.completed`. */
  completed: number;
  /** p99 and max of this process's event-loop delay from `start` to the end, in ms. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

/**
 * Parts of a stream left out of its settled delays: the first parts follow a burst of events
 * (`run.in-progress`, `message.created`) that B writes to every stream just before them.
 */
export const SETTLED_AFTER = 5;

const send = (report: FollowerReport): void => {
  process.send?.(report);
};

const TYPE_KEY = '"type":"';
const CONTENT_KEY = '"content":"';

/**
 * The `type` of the event whose JSON is `text` from `from` to `to`, read where the top-level key
 * lies: first (as Redis keeps the order it was written in) or last (PostgreSQL's jsonb orders
 * keys by length, and `type` is the longest of a run or part event's). A JSON parse only when
 * it is in neither place.
 */
function typeOf(text: string, from: number, to: number): string | undefined {
  if (text.startsWith(`{${TYPE_KEY}`, from)) {
    const start = from + 1 + TYPE_KEY.length;
    return text.slice(start, text.indexOf('"', start));
  }
  if (text.endsWith('"}', to)) {
    const key = text.lastIndexOf(TYPE_KEY, to);
    const start = key + TYPE_KEY.length;
    if (key > from && text.indexOf('"', start) === to - 2) return text.slice(start, to - 2);
  }
  return (JSON.parse(text.slice(from, to)) as { type?: string }).type;
}

/** Delays of every part, grown as needed. */
class Samples {
  values = new Float64Array(1024);
  length = 0;
  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }
  take(): Float64Array {
    return this.values.slice(0, this.length);
  }
}

interface Stream {
  attached: Promise<void>;
  finished: Promise<void>;
  completed(): boolean;
  parts(): number;
  close(): void;
}

interface Tally {
  delays: Samples;
  settled: Samples;
  earliest: Map<number, number>;
  fromYield: Samples;
  unstamped: number;
}

/**
 * The frame's `data` (its first `data:` line, which is all an ACP event has), as offsets into
 * `text`, which holds the frame from `start` to `end`; `undefined` for a frame without data.
 */
function dataOf(text: string, start: number, end: number): [number, number] | undefined {
  let line = start;
  while (line < end) {
    let lineEnd = text.indexOf("\n", line);
    if (lineEnd === -1 || lineEnd > end) lineEnd = end;
    if (text.startsWith("data:", line)) {
      const from = line + (text.charCodeAt(line + 5) === 32 ? 6 : 5);
      return [from, lineEnd];
    }
    line = lineEnd + 1;
  }
  return undefined;
}

function follow(url: string, runId: string, tally: Tally): Stream {
  let attachedAt: number | undefined;
  let completed = false;
  let parts = 0;
  /** Parts timed so far. */
  let timed = 0;
  let markAttached!: () => void;
  let fail!: (error: Error) => void;
  const attached = new Promise<void>((resolve, reject) => {
    markAttached = resolve;
    fail = reject;
  });
  attached.catch(() => {});
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const onFrame = (text: string, start: number, end: number, arrived: number): void => {
    const data = dataOf(text, start, end);
    if (data === undefined) return;
    const [from, to] = data;
    const type = typeOf(text, from, to);
    if (type === "message.part") {
      const at = text.indexOf(CONTENT_KEY, from);
      if (at === -1 || at > to) return;
      const valueStart = at + CONTENT_KEY.length;
      const valueEnd = text.indexOf('"', valueStart);
      if (valueEnd === -1 || valueEnd > to) return;
      // `<yielded>` as the agent wrote it, `<yielded> <written>` once the bench server stamped it.
      const space = text.indexOf(" ", valueStart);
      const stamped = space !== -1 && space < valueEnd;
      const yielded = Number(text.slice(valueStart, stamped ? space : valueEnd));
      const written = stamped ? Number(text.slice(space + 1, valueEnd)) : yielded;
      if (Number.isNaN(yielded) || Number.isNaN(written)) return;
      parts++;
      if (attachedAt === undefined || yielded < attachedAt) return;
      const delay = arrived - written;
      tally.delays.push(delay);
      if (++timed > SETTLED_AFTER) tally.settled.push(delay);
      const earliest = tally.earliest.get(written);
      if (earliest === undefined || delay < earliest) tally.earliest.set(written, delay);
      tally.fromYield.push(arrived - yielded);
      if (!stamped) tally.unstamped++;
    } else if (type === "run.awaiting") {
      if (attachedAt === undefined) {
        attachedAt = arrived;
        markAttached();
      }
    } else if (type === "run.completed") {
      completed = true;
    }
  };

  const request = http.get(
    `${url}/runs/${runId}/events`,
    { agent: false, headers: { accept: "text/event-stream" } },
    (response) => {
      if (response.statusCode !== 200) {
        fail(new Error(`follower: status ${response.statusCode}`));
        response.resume();
        return;
      }
      response.setEncoding("utf8");
      let pending = "";
      // Where the search for the end of a frame resumes: a frame split over chunks is scanned once.
      let searchFrom = 0;
      response.on("data", (chunk: string) => {
        const arrived = wallClockMs();
        pending = pending.length === 0 ? chunk : pending + chunk;
        let start = 0;
        for (let end = pending.indexOf("\n\n", searchFrom); end !== -1; end = pending.indexOf("\n\n", start)) {
          onFrame(pending, start, end, arrived);
          start = end + 2;
        }
        pending = start === 0 ? pending : pending.slice(start);
        searchFrom = Math.max(0, pending.length - 1);
      });
      response.once("end", finish);
      response.once("close", finish);
    },
  );
  request.once("error", (error) => {
    fail(error);
    finish();
  });
  return {
    attached,
    finished,
    completed: () => completed,
    parts: () => parts,
    close: () => request.destroy(),
  };
}

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
let streams: Stream[] = [];
let tally: Tally = {
  delays: new Samples(),
  settled: new Samples(),
  earliest: new Map(),
  fromYield: new Samples(),
  unstamped: 0,
};

async function attach(command: Extract<FollowerCommand, { type: "follow" }>): Promise<void> {
  for (const stream of streams) stream.close();
  streams = [];
  tally = {
    delays: new Samples(),
    settled: new Samples(),
    earliest: new Map(),
    fromYield: new Samples(),
    unstamped: 0,
  };
  for (let index = 0; index < command.count; index += command.concurrency) {
    const batch = Array.from({ length: Math.min(command.concurrency, command.count - index) }, () =>
      follow(command.url, command.runId, tally),
    );
    streams.push(...batch);
    await Promise.all(batch.map((stream) => stream.attached));
    send({ type: "attached", attached: streams.length });
  }
  if (command.count === 0) send({ type: "attached", attached: 0 });
}

async function measure(): Promise<void> {
  loopDelay.reset();
  loopDelay.enable();
  await Promise.all(streams.map((stream) => stream.finished));
  loopDelay.disable();
  const result: FollowersResult = {
    delays: tally.delays.take(),
    settled: tally.settled.take(),
    fromYield: tally.fromYield.take(),
    earliest: tally.earliest,
    unstamped: tally.unstamped,
    parts: streams.map((stream) => stream.parts()),
    completed: streams.filter((stream) => stream.completed()).length,
    loopDelayP99Ms: streams.length === 0 ? 0 : loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: streams.length === 0 ? 0 : loopDelay.max / 1e6,
  };
  for (const stream of streams) stream.close();
  streams = [];
  send({ type: "done", result });
}

const failed = (error: unknown): void => send({ type: "error", message: String((error as Error)?.stack ?? error) });

process.on("message", (command: FollowerCommand) => {
  if (command.type === "follow") attach(command).catch(failed);
  else if (command.type === "start") measure().catch(failed);
});
// The bench went away: nothing left to report to.
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });

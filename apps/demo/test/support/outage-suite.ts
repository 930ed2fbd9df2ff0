/**
 * What a demo instance does when its store goes away and comes back, the same for every backend:
 * a private server (killed with SIGKILL, started again on the same port with its data), a demo
 * instance on it with a short store timeout (ACP_STORE_TIMEOUT_MS) and an outage window
 * (ACP_OUTAGE_MS) that a restart fits in, and plain HTTP against it. Every wait is bounded, so a
 * hang fails the test instead of stalling it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type Instance, startInstance, stopInstances } from "./cluster.ts";
import { frameData, frameId, SseFrames } from "./sse-frames.ts";
import { pollUntil } from "./until.ts";

/** Store calls answer within this (ACP_STORE_TIMEOUT_MS), so requests need no longer. */
export const STORE_TIMEOUT_MS = 1000;
/** Running agents ride out outages this long (ACP_OUTAGE_MS): long enough for a restart on a busy machine. */
export const OUTAGE_MS = 15_000;
/** The outage window of the instance whose runs must fail: short, so that the test is. */
const SHORT_OUTAGE_MS = 2000;
/** The bound on one HTTP request to the instance while the store is down: the timeout plus a margin. */
const REQUEST_BOUND_MS = STORE_TIMEOUT_MS + 4000;
/** The bound on waiting for the instance to see the store again, or for a run to end. */
const RECOVERY_BOUND_MS = 30_000;
/** How much of an instance's log a failed test prints. */
const LOG_TAIL_CHARS = 6000;
/** Each test waits through an outage or two, every wait bounded by the above. */
export const TEST_TIMEOUT_MS = 120_000;

/** A private store server that a test may kill and start again. */
export interface OutageServer {
  kill(): Promise<void>;
  /** Starts it again on the same port, with the data it had. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** One backend, as the outage tests need it. */
export interface OutageBackend<S extends OutageServer> {
  /** Its name in test names, with how the outage is made ("Redis (SIGKILL, restart with AOF)"). */
  name: string;
  start(): Promise<S>;
  /** The environment that points a demo instance at `server`. */
  env(server: S): Record<string, string>;
  /** The ids of every run stored on the server, read directly. */
  storedRunIds(server: S): Promise<string[]>;
  /** Whether the instance listens for changes of `runId` on the server (its pub/sub or LISTEN connection is up). */
  listensFor(server: S, runId: string): Promise<boolean>;
}

export interface RunJson {
  run_id: string;
  status: string;
  error?: { code: string; message: string } | null;
}

interface EventJson {
  type: string;
  part?: { content?: string };
  error?: { code: string; message: string };
}

/** One SSE frame: `id` is the event's seq (absent on an `error` frame). */
export interface Frame {
  id: number | undefined;
  data: EventJson;
}

const TERMINAL = ["completed", "failed", "cancelled"];

const user = (content: string) => ({ role: "user", parts: [{ content }] });

/** Calls `check` every 100 ms until it returns something other than undefined; fails after `ms` saying `what`. */
export function until<T>(what: string, check: () => Promise<T | undefined>, ms = RECOVERY_BOUND_MS): Promise<T> {
  return pollUntil(what, check, ms, 100);
}

/** An HTTP request to the instance that cannot hang: it is aborted after `ms`. */
export function request(url: string, init: RequestInit = {}, ms = REQUEST_BOUND_MS): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
}

export function postJson(url: string, body: unknown, ms?: number): Promise<Response> {
  return request(
    url,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
    ms,
  );
}

/** Starts a run of the tokens agent in async mode: `words` one by one, `delayMs` apart. */
export async function startTokensRun(url: string, words: string[], delayMs: number): Promise<RunJson> {
  const response = await postJson(`${url}/runs`, {
    agent_name: "tokens",
    input: [user(`${words.join(" ")} delay=${delayMs}`)],
    mode: "async",
  });
  expect(response.status).toBe(202);
  return (await response.json()) as RunJson;
}

/** `count` distinct words, so that an event out of place or written twice shows. */
export function words(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `w${i + 1}`);
}

/** Opens an SSE follower of the run's events after `lastEventId` (all of them without one). */
export async function follow(url: string, runId: string, lastEventId?: number): Promise<Response> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
  const response = await request(`${url}/runs/${runId}/events`, { headers }, RECOVERY_BOUND_MS * 2);
  expect(response.status).toBe(200);
  return response;
}

/**
 * Reads SSE frames until the stream ends (the server ends it after the run's end, or after an
 * error event) or `stop(frames)` holds: then the connection stays open, and another call with the
 * same reader goes on.
 */
export async function readFrames(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  frames: Frame[],
  stop: (frames: Frame[]) => boolean = () => false,
): Promise<"ended" | "stopped"> {
  const splitter = new SseFrames();
  for (;;) {
    if (stop(frames)) return "stopped";
    const chunk = await reader.read();
    if (chunk.done) return "ended";
    for (const frame of splitter.push(chunk.value)) {
      const data = frameData(frame);
      if (data !== undefined) frames.push({ id: frameId(frame), data: JSON.parse(data) as EventJson });
    }
  }
}

/** Whether the instance's JSON log has the line that says the run `runId` failed. */
function loggedRunFailure(output: string, runId: string): boolean {
  return output.split("\n").some((line) => {
    if (!line.startsWith("{")) return false;
    const entry = JSON.parse(line) as { run_id?: string; msg?: string };
    return entry.run_id === runId && entry.msg === "the run failed";
  });
}

/** The run's stored log, in order (GET /runs/{id}/events as JSON). */
export async function storedEvents(url: string, runId: string): Promise<EventJson[]> {
  const response = await request(`${url}/runs/${runId}/events`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { events: EventJson[] }).events;
}

/** The run once it has ended, polled until then (through the outage's 503s). */
export async function endedRun(url: string, runId: string): Promise<RunJson> {
  return until(`run ${runId} to end`, async () => {
    const response = await request(`${url}/runs/${runId}`);
    if (response.status !== 200) return undefined;
    const run = (await response.json()) as RunJson;
    return TERMINAL.includes(run.status) ? run : undefined;
  });
}

/** What the instance said lately: a failed test shows it. */
function printLog(instance: Instance | undefined): void {
  if (instance)
    console.error(`[outage test] the instance's log, its end:\n${instance.output().slice(-LOG_TAIL_CHARS)}`);
}

/** Whether /ping answers `status`; the request is bounded, so an instance that hangs counts as no. */
async function pings(url: string, status: number): Promise<true | undefined> {
  const response = await request(`${url}/ping`);
  return response.status === status ? true : undefined;
}

/**
 * Checks a tokens run's log: run.created, run.in-progress, then one message whose parts are the
 * first words in order, each once, then the end: all words and run.completed, or (failed) any
 * prefix of them and run.failed. Exactly one terminal event, the last.
 */
export function expectTokensLog(events: EventJson[], all: string[], end: "completed" | "failed"): void {
  const types = events.map((event) => event.type);
  expect(types.slice(0, 2)).toEqual(["run.created", "run.in-progress"]);
  expect(types.filter((type) => ["run.completed", "run.failed", "run.cancelled"].includes(type))).toEqual([
    `run.${end}`,
  ]);
  expect(types.at(-1)).toBe(`run.${end}`);
  const parts = events.filter((event) => event.type === "message.part").map((event) => event.part?.content);
  if (end === "completed") {
    expect(parts).toEqual(all.map((word) => `${word} `));
    expect(types).toEqual([
      "run.created",
      "run.in-progress",
      "message.created",
      ...all.map(() => "message.part"),
      "message.completed",
      "run.completed",
    ]);
  } else {
    expect(parts).toEqual(all.slice(0, parts.length).map((word) => `${word} `));
    const middle =
      parts.length === 0 ? [] : ["message.created", ...parts.map(() => "message.part"), "message.completed"];
    expect(types).toEqual(["run.created", "run.in-progress", ...middle, "run.failed"]);
  }
}

/** The frames of one or more SSE connections together must be the log, seq 1..n, each once. */
export function expectFramesAreTheLog(frames: Frame[], log: EventJson[]): void {
  const events = frames.filter((frame) => frame.data.type !== "error");
  expect(events.map((frame) => frame.id)).toEqual(log.map((_, i) => i + 1));
  expect(events.map((frame) => frame.data)).toEqual(log);
}

/**
 * Follows a run to its end through an outage as a client does: when the stream breaks, it must
 * have said why (an `error` frame with an ACP error); the client comes back with Last-Event-ID.
 */
export async function followToEnd(
  url: string,
  runId: string,
  frames: Frame[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
  for (;;) {
    await readFrames(reader, frames);
    const last = frames.at(-1);
    if (last && ["run.completed", "run.failed", "run.cancelled"].includes(last.data.type)) return;
    // The stream ended without the run's end: only with a clear error event.
    expect(last?.data.type, "a stream that ends early must end with an error event").toBe("error");
    expect(last?.data.error).toMatchObject({ code: "server_error" });
    const lastId = frames.filter((frame) => frame.id !== undefined).at(-1)?.id ?? 0;
    reader = await until("the stream to open again", async () => {
      const response = await request(
        `${url}/runs/${runId}/events`,
        { headers: { accept: "text/event-stream", "last-event-id": String(lastId) } },
        RECOVERY_BOUND_MS * 2,
      );
      if (response.status === 200) return response.body!.getReader();
      await response.body?.cancel();
      return undefined;
    });
  }
}

/** What tests of one backend get from {@link describeOutage} to add their own. */
export interface OutageContext<S extends OutageServer> {
  server(): S;
  instance(): Instance;
}

/**
 * The outage tests every backend passes; `more` adds the backend's own, which run after them on
 * the same server and instance.
 */
export function describeOutage<S extends OutageServer>(
  backend: OutageBackend<S>,
  more?: (context: OutageContext<S>) => void,
): void {
  describe(`${backend.name} outage`, () => {
    let server: S;
    let instance: Instance;

    beforeAll(async () => {
      server = await backend.start();
      instance = await startInstance({
        ...backend.env(server),
        ACP_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
        ACP_OUTAGE_MS: String(OUTAGE_MS),
      });
    });

    afterEach(({ task }) => {
      if (task.result?.state === "fail") printLog(instance);
    });

    afterAll(async () => {
      await stopInstances([instance].filter(Boolean));
      await server?.stop();
    });

    /** Kills the store and waits until the instance has noticed (its /ping answers 503). */
    async function outage(on = instance): Promise<void> {
      await server.kill();
      await until("/ping to answer 503 once the store is down", () => pings(on.url, 503));
    }

    /** Starts the store again and waits until every instance sees it (/ping answers 200). */
    async function recovery(...others: Instance[]): Promise<void> {
      await server.restart();
      for (const on of [instance, ...others])
        await until("/ping to answer 200 once the store is back", () => pings(on.url, 200));
    }

    it(
      "answers 503 with an ACP error while the store is down, within the store timeout, and stays up",
      async () => {
        const before = await postJson(`${instance.url}/runs`, { agent_name: "echo", input: [user("before")] });
        expect(before.status).toBe(200);
        const known = ((await before.json()) as RunJson).run_id;
        const runsBefore = await backend.storedRunIds(server);
        expect(runsBefore).toContain(known);
        await outage();
        try {
          const ping = await request(`${instance.url}/ping`);
          expect(ping.status).toBe(503);
          expect(await ping.json()).toMatchObject({ code: "server_error" });
          for (const send of [
            () => postJson(`${instance.url}/runs`, { agent_name: "echo", input: [user("during")] }),
            () => postJson(`${instance.url}/runs`, { agent_name: "echo", input: [user("during")], mode: "async" }),
            () => request(`${instance.url}/runs/${known}`),
            () => request(`${instance.url}/runs/${known}/events`),
            () => request(`${instance.url}/runs/${known}/events`, { headers: { accept: "text/event-stream" } }),
          ]) {
            const response = await send();
            expect(response.status).toBe(503);
            expect(await response.json()).toEqual({
              code: "server_error",
              message: "The store is unavailable; try again shortly",
            });
          }
          // What needs no store still answers: the process is up.
          expect((await request(`${instance.url}/agents/echo`)).status).toBe(200);
          expect(instance.child.exitCode).toBeNull();
        } finally {
          await recovery();
        }
        // A create that was refused must not land later (from a queue of the client library, say;
        // such a queue is sent, in order, before the /ping that saw the store back).
        expect((await backend.storedRunIds(server)).sort()).toEqual(runsBefore.sort());
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "recovers by itself once the store is back: /ping, new runs, followers catching up with Last-Event-ID, its change listener",
      async () => {
        const all = words(5);
        const done = await postJson(`${instance.url}/runs`, { agent_name: "tokens", input: [user(all.join(" "))] });
        const finished = (await done.json()) as RunJson;
        expect(finished.status).toBe("completed");
        const waiting = (await (
          await postJson(`${instance.url}/runs`, { agent_name: "approval", input: [user("the release")] })
        ).json()) as RunJson;
        expect(waiting.status).toBe("awaiting");

        await outage();
        await recovery();
        expect(instance.child.exitCode).toBeNull();

        const echo = await postJson(`${instance.url}/runs`, { agent_name: "echo", input: [user("after")] });
        expect(echo.status).toBe(200);
        expect(((await echo.json()) as RunJson).status).toBe("completed");

        // The log written before the outage is there, and a follower picks it up where it left off.
        const frames: Frame[] = [];
        expect(await readFrames((await follow(instance.url, finished.run_id, 2)).body!.getReader(), frames)).toBe(
          "ended",
        );
        const log = await storedEvents(instance.url, finished.run_id);
        expectTokensLog(log, all, "completed");
        expect(frames.map((frame) => frame.id)).toEqual(log.slice(2).map((_, i) => i + 3));

        // The run that awaited across the outage is still waiting; its agent hears the resume
        // through the change listener, which is up again.
        expect(((await (await request(`${instance.url}/runs/${waiting.run_id}`)).json()) as RunJson).status).toBe(
          "awaiting",
        );
        await until("the instance to listen for the awaiting run again", async () =>
          (await backend.listensFor(server, waiting.run_id)) ? true : undefined,
        );
        const resumed = await postJson(
          `${instance.url}/runs/${waiting.run_id}`,
          { await_resume: { type: "message", message: user("yes") }, mode: "sync" },
          RECOVERY_BOUND_MS,
        );
        expect(resumed.status).toBe(200);
        expect(((await resumed.json()) as RunJson).status).toBe("completed");
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "completes a run in flight when the store comes back within the outage window; its log is complete, in order, once",
      async () => {
        const all = words(30);
        const run = await startTokensRun(instance.url, all, 100);
        const frames: Frame[] = [];
        const reader = (await follow(instance.url, run.run_id)).body!.getReader();
        await readFrames(
          reader,
          frames,
          (seen) => seen.filter((frame) => frame.data.type === "message.part").length >= 5,
        );

        await outage();
        await recovery();

        const ended = await endedRun(instance.url, run.run_id);
        expect(ended).toMatchObject({ status: "completed", error: null });
        const log = await storedEvents(instance.url, run.run_id);
        expectTokensLog(log, all, "completed");
        await followToEnd(instance.url, run.run_id, frames, reader);
        expectFramesAreTheLog(frames, log);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "fails a run in flight with a clear error when the store stays down past the outage window, and only says so once it is stored",
      async () => {
        const impatient = await startInstance({
          ...backend.env(server),
          ACP_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
          ACP_OUTAGE_MS: String(SHORT_OUTAGE_MS),
        });
        onTestFailed(() => printLog(impatient));
        try {
          const all = words(100);
          const run = await startTokensRun(impatient.url, all, 100);
          const frames: Frame[] = [];
          const reader = (await follow(impatient.url, run.run_id)).body!.getReader();
          await readFrames(
            reader,
            frames,
            (seen) => seen.filter((frame) => frame.data.type === "message.part").length >= 3,
          );

          await outage(impatient);
          try {
            // The instance gives the run up (and logs it) while the store is still down.
            await until("the instance to give the run up", async () =>
              loggedRunFailure(impatient.output(), run.run_id) ? true : undefined,
            );
            // Nothing can be stored, so nothing is reported: the run is not readable yet.
            expect((await request(`${impatient.url}/runs/${run.run_id}`)).status).toBe(503);
          } finally {
            await recovery(impatient);
          }

          const ended = await endedRun(impatient.url, run.run_id);
          expect(ended.status).toBe("failed");
          expect(ended.error).toEqual({
            code: "server_error",
            message: "The store was unavailable for too long; the run could not continue",
          });
          const log = await storedEvents(impatient.url, run.run_id);
          expectTokensLog(log, all, "failed");
          await followToEnd(impatient.url, run.run_id, frames, reader);
          expectFramesAreTheLog(frames, log);
        } finally {
          await stopInstances([impatient]);
        }
      },
      TEST_TIMEOUT_MS,
    );

    more?.({ server: () => server, instance: () => instance });
  });
}

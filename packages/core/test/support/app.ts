/**
 * An ACP app over an in-process MemoryStore, driven through `app.request()`: no socket, no port.
 * Helpers send JSON the way an HTTP client would (with its Content-Length) and read SSE bodies.
 */
import { MemoryStore } from "@acp/store-memory";
import {
  type ACPApp,
  type Agent,
  type AppOptions,
  createApp,
  type Event,
  type Run,
  type Store,
} from "../../src/index.ts";

export interface TestApp {
  app: ACPApp;
  store: Store;
  /** `app.request()` with a path. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** POSTs `body` as JSON. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** GETs a path and parses its JSON body. */
  getJson<T = unknown>(path: string, headers?: Record<string, string>): Promise<T>;
  /** Drains the app (runs still going fail after `deadlineMs`) and closes the store. Idempotent. */
  stop(deadlineMs?: number): Promise<void>;
}

const started = new Set<TestApp>();

/**
 * Builds and starts an app over `store` (a fresh MemoryStore by default). Stop it with
 * {@link TestApp.stop}, or all at once with {@link stopApps}.
 */
export async function startApp(
  agents: readonly Agent[],
  options: Omit<AppOptions, "store"> = {},
  store: Store = new MemoryStore(),
): Promise<TestApp> {
  const app = createApp(agents, { ...options, store });
  await app.runtime.start();
  let stopping: Promise<void> | undefined;
  const testApp: TestApp = {
    app,
    store,
    request: async (path, init) => app.request(path, init),
    post: async (path, body, headers = {}) => app.request(path, jsonInit(body, headers)),
    async getJson<T>(path: string, headers: Record<string, string> = {}) {
      return (await (await app.request(path, { headers })).json()) as T;
    },
    stop(deadlineMs = 200) {
      started.delete(testApp);
      stopping ??= (async () => {
        await app.shutdown({ deadlineMs });
        await store.close?.();
      })();
      return stopping;
    },
  };
  started.add(testApp);
  return testApp;
}

/** Stops every app started and not stopped yet. */
export async function stopApps(deadlineMs?: number): Promise<void> {
  await Promise.all([...started].map((testApp) => testApp.stop(deadlineMs)));
}

/** A JSON POST as a client sends it over HTTP: Content-Type and Content-Length set. */
export function jsonInit(body: unknown, headers: Record<string, string> = {}): RequestInit {
  const text = JSON.stringify(body);
  return {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers },
    body: text,
  };
}

/** A user message with one text part, as a client sends it. */
export const user = (content: string) => ({ role: "user", parts: [{ content }] });

/** POSTs a run request and returns the run of the answer, expecting `status` as HTTP status. */
export async function createRun(testApp: TestApp, body: Record<string, unknown>, status = 200): Promise<Run> {
  const response = await testApp.post("/runs", body);
  if (response.status !== status)
    throw new Error(`POST /runs answered ${response.status}, not ${status}: ${await response.text()}`);
  return (await response.json()) as Run;
}

/** One SSE frame: its `data` parsed as JSON and its `id` when it has one. */
export interface Frame {
  id?: number;
  data: Event;
}

/** Splits an SSE body into frames, skipping keep-alive comments; throws on a line that is neither `data:` nor `id:`. */
export function parseFrames(text: string): Frame[] {
  if (text === "") return [];
  if (!text.endsWith("\n\n"))
    throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(text.slice(-80))}`);
  return text
    .slice(0, -2)
    .split("\n\n")
    .filter((block) => !block.startsWith(":"))
    .map((block) => {
      const frame: Partial<Frame> = {};
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) frame.data = JSON.parse(line.slice(6)) as Event;
        else if (line.startsWith("id: ")) frame.id = Number(line.slice(4));
        else throw new Error(`unexpected SSE line ${JSON.stringify(line)}`);
      }
      if (frame.data === undefined) throw new Error(`SSE frame without data: ${JSON.stringify(block)}`);
      return frame as Frame;
    });
}

/** Reads a streamed body chunk by chunk until `done(textSoFar)` holds or the stream ends. */
export async function readUntil(
  response: Response,
  done: (text: string) => boolean,
): Promise<{ text: string; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!done(text)) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += decoder.decode(chunk.value, { stream: true });
  }
  return { text, reader };
}

/** Polls `check` every few milliseconds until it returns something other than `undefined`/`false`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The playground's side of the ACP HTTP API: JSON requests that turn an ACP error body
 * (`{ code, message }`) into an {@link ApiError}, and Server-Sent Events read from a `fetch`
 * response (an `EventSource` can neither POST nor send an `Authorization` header). Every answer
 * carries the `acp-instance` header of the instance that served it.
 */

const KEY_STORAGE = "acp-playground-api-key";

/** The API key typed in the page; session storage keeps it across reloads of the tab, never longer. */
export function apiKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** An ACP error answer (or a network failure, with status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly instance: string | null;
  readonly data: unknown;
  constructor(status: number, code: string, message: string, instance: string | null = null, data?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.instance = instance;
    this.data = data;
  }
}

export interface Answer<T> {
  status: number;
  /** The `acp-instance` header: which instance served this response. */
  instance: string | null;
  body: T;
}

function headersFor(body: unknown, extra: Record<string, string> = {}): Headers {
  const headers = new Headers(extra);
  if (body !== undefined) headers.set("content-type", "application/json");
  const key = apiKey();
  if (key) headers.set("authorization", `Bearer ${key}`);
  return headers;
}

async function send(
  method: string,
  path: string,
  body: unknown,
  signal: AbortSignal | undefined,
  extra?: Record<string, string>,
): Promise<Response> {
  try {
    return await fetch(path, {
      method,
      headers: headersFor(body, extra),
      body: body === undefined ? null : JSON.stringify(body),
      signal: signal ?? null,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, "network_error", `The server cannot be reached (${(error as Error).message})`);
  }
}

async function failure(response: Response): Promise<ApiError> {
  const instance = response.headers.get("acp-instance");
  const text = await response.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown; data?: unknown };
    if (typeof parsed.code === "string" && typeof parsed.message === "string")
      return new ApiError(response.status, parsed.code, parsed.message, instance, parsed.data);
  } catch {
    // not an ACP error body: say what came
  }
  return new ApiError(response.status, "http_error", `HTTP ${response.status} ${response.statusText}`.trim(), instance);
}

/** Sends a JSON request; resolves with the parsed body, rejects with an {@link ApiError}. */
export async function call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Answer<T>> {
  const response = await send(method, path, body, signal);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return { status: response.status, instance: response.headers.get("acp-instance"), body: JSON.parse(text) as T };
}

/** One Server-Sent Event: `id` is the event's sequence number in the run (absent on `error` frames). */
export interface Frame {
  id: number | undefined;
  data: string;
}

export interface EventStream {
  instance: string | null;
  /** The `Run-ID` header of `POST /runs`: the run's id before its first event arrives. */
  runId: string | null;
  frames: AsyncGenerator<Frame>;
}

/**
 * Opens a stream: `POST /runs` or a resume in stream mode, or `GET /runs/{id}/events` after
 * `lastEventId`. Rejects with an {@link ApiError} when the server answers with an error.
 */
export async function openStream(
  method: "GET" | "POST",
  path: string,
  body: unknown,
  lastEventId: number | undefined,
  signal: AbortSignal,
): Promise<EventStream> {
  const extra: Record<string, string> = { accept: "text/event-stream" };
  if (lastEventId !== undefined && lastEventId > 0) extra["last-event-id"] = String(lastEventId);
  const response = await send(method, path, body, signal, extra);
  if (!response.ok) throw await failure(response);
  if (!response.body || !(response.headers.get("content-type") ?? "").startsWith("text/event-stream"))
    throw new ApiError(response.status, "http_error", "The server did not answer with an event stream");
  return {
    instance: response.headers.get("acp-instance"),
    runId: response.headers.get("run-id"),
    frames: readFrames(response.body),
  };
}

/** Splits an SSE body into frames; ends when the body ends, throws when the connection breaks. */
async function* readFrames(body: ReadableStream<Uint8Array>): AsyncGenerator<Frame> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const frame = parseFrame(block);
        if (frame) yield frame;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseFrame(block: string): Frame | undefined {
  const data: string[] = [];
  let id: number | undefined;
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "id" && /^\d+$/.test(value)) id = Number(value);
  }
  return data.length === 0 ? undefined : { id, data: data.join("\n") };
}

/**
 * `createApp()`: the ACP 0.2 HTTP API as a Hono app over a {@link Store}.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import type { Agent } from "../agent.ts";
import { ACPError, invalidInput, notFound } from "../errors.ts";
import {
  isTerminal,
  RunCreateRequestSchema,
  RunIdSchema,
  RunResumeRequestSchema,
  SessionIdSchema,
  type Event,
} from "../models.ts";
import type { HistoryOptions } from "../history-fetch.ts";
import type { LimitOptions } from "../limits.ts";
import { Runtime } from "../run/runtime.ts";
import { resourceUrl } from "../session.ts";
import { StoreError, type Store } from "../store.ts";
import { apiKeyAuth, type AuthOptions } from "./auth.ts";
import { acpCors, type CorsOptions } from "./cors.ts";
import { requestHeader } from "./request-header.ts";
import { endsAtTerminal, endsAtTerminalOrAwait, streamRunEvents } from "./sse.ts";

export interface AppOptions {
  /** Where runs, events and sessions live; share one backend between instances for HA. */
  store: Store;
  /** How long an instance may go silent before another fails its runs as orphaned. @default 30_000 */
  leaseMs?: number;
  /** How long one store call may take before the request answers 503. @default 5_000 */
  storeTimeoutMs?: number;
  /** How long a running agent's writes are retried through a store outage before its run fails. @default 30_000 */
  outageMs?: number;
  /** Largest accepted request body in bytes; larger ones get 413 without being read whole. @default 4_194_304 */
  maxBodyBytes?: number;
  /**
   * Public base URL of the deployment (the load balancer's), used in session history URLs.
   * @default the origin of each request (its Host header)
   */
  baseUrl?: string;
  /**
   * API-key authentication: every request but `GET /ping` needs one of the keys, else it gets 401
   * (see {@link apiKeyAuth}).
   * @default undefined (no authentication: put the server behind something that authenticates)
   */
  auth?: AuthOptions;
  /**
   * CORS for browser clients on other origins (see {@link acpCors}).
   * @default undefined (no CORS headers: browsers allow same-origin calls only)
   */
  cors?: CorsOptions;
  /**
   * How history URLs of a client's session descriptor that point at another server are loaded.
   * @default {} (none is loaded; items of this deployment always come from the store)
   */
  history?: HistoryOptions;
  /**
   * Limits on run input and run output.
   * @default { maxInputMessages: 100, maxPartsPerMessage: 100, maxEventsPerRun: 100_000 }
   */
  limits?: LimitOptions;
}

/** The Hono app plus what its process needs to run it well. */
export type ACPApp = Hono & {
  /** This instance's runtime: its id, its runs, its orphan sweep. */
  readonly runtime: Runtime;
  /**
   * Graceful shutdown: `/ping` and `POST /runs` answer 503 from now on, runs in flight get until
   * `deadlineMs` to finish, the rest fail with a clear error.
   */
  shutdown(options?: { deadlineMs?: number }): Promise<void>;
};

/** Parses a body or a parameter, or throws an `invalid_input` error naming the field. */
function parse<T>(schema: v.GenericSchema<unknown, T>, value: unknown, where: string): T {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const path = issue.path?.map((item) => String(item.key)).join(".");
  if (path && issue.input === undefined && issue.kind === "schema") throw invalidInput(`Invalid ${where}: ${path} is required`);
  throw invalidInput(`Invalid ${where}${path ? ` at ${path}` : ""}: ${issue.message}`);
}

/** Deepest nesting of arrays and objects a body may have: deeper values overflow the stack of the stores that copy or serialise them. */
const MAX_JSON_DEPTH = 64;

/** NUL and unpaired surrogates: JSON allows them in strings, PostgreSQL's jsonb refuses them, and UTF-8 cannot carry the latter. */
const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a parsed body cannot be stored by every store, or `undefined`: nesting deeper than `levels`,
 * or a string or key with NUL or an unpaired surrogate. Stops descending at the depth limit, so
 * it cannot overflow itself.
 */
function unstorable(value: unknown, levels: number, path: string[] = []): string | undefined {
  // The path is joined only for the message: keys may be long.
  const at = (): string => (path.length === 0 ? "the body" : path.join(".").slice(0, 200));
  if (typeof value === "string") {
    return UNSTORABLE_TEXT.test(value) ? `Text at ${at()} holds NUL or an unpaired surrogate: send binary data base64-encoded` : undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  if (levels === 0) return `The request body is nested deeper than ${MAX_JSON_DEPTH} levels`;
  // for…in rather than Object.entries: no array of pairs per object. Parsed JSON has no inherited keys.
  for (const key in value) {
    if (UNSTORABLE_TEXT.test(key)) return `A key in ${at()} holds NUL or an unpaired surrogate`;
    path.push(key);
    const problem = unstorable((value as Record<string, unknown>)[key], levels - 1, path);
    path.pop();
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * Reads, after the answer, what is left of a request body that no handler read (an early error, a
 * cancel sent with a body): the connection cannot serve its next request before that, and Node's
 * adapter would cut it although the answer said keep-alive. A body that may be over the limit is
 * not read: its connection closes after the answer instead.
 */
function finishUnreadBody(maxBodyBytes: number): MiddlewareHandler {
  return async function finishUnreadBody(c, next) {
    await next();
    const request = c.req.raw;
    const length = requestHeader(c, "content-length");
    const chunked = requestHeader(c, "transfer-encoding") !== undefined;
    // `bodyUsed` and the headers first: touching `request.body` makes Node's adapter build a full
    // Request for every request, a large part of a request's cost.
    if (request.bodyUsed || (length === undefined && !chunked) || length === "0" || request.body === null) return;
    if (!chunked && Number(length) <= maxBodyBytes) void request.arrayBuffer().catch(() => undefined);
    else c.header("connection", "close");
  };
}

/**
 * 413 for a body over the limit, without reading it whole. A declared length is checked from the
 * header alone (hono's bodyLimit looks at `request.body` first, which costs every request a full
 * Request object on Node); a chunked body is counted as it streams in.
 */
function limitBody(maxBodyBytes: number): MiddlewareHandler {
  const counting = bodyLimit({
    maxSize: maxBodyBytes,
    // The rest of the body is never read, so the connection cannot carry another request.
    onError: (c) => tooLarge(c, maxBodyBytes),
  });
  return async function limitBody(c, next) {
    const length = requestHeader(c, "content-length");
    if (requestHeader(c, "transfer-encoding") === undefined) {
      if (length === undefined) return next();
      return Number(length) > maxBodyBytes ? tooLarge(c, maxBodyBytes) : next();
    }
    return counting(c, next);
  };
}

function tooLarge(c: Context, maxBodyBytes: number): Response {
  return c.json({ code: "invalid_input", message: `The request body is larger than ${maxBodyBytes} bytes` }, 413, { connection: "close" });
}

/** The request body as a JSON object; every ACP request body is one. */
async function readJson(c: Context): Promise<Record<string, unknown>> {
  // No Content-Type is taken as JSON; any other type is refused rather than guessed at.
  const type = requestHeader(c, "content-type");
  if (type !== undefined && !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) {
    throw invalidInput(`Content-Type must be application/json, not ${type.replace(/;.*$/s, "").trim().slice(0, 100)}`, 415);
  }
  const text = await c.req.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Only now: trimming copies the whole body.
    if (text.trim() === "") throw invalidInput("The request body is empty: send a JSON object", 400);
    throw invalidInput("The request body is not valid JSON", 400);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidInput("The request body must be a JSON object");
  const problem = unstorable(body, MAX_JSON_DEPTH);
  if (problem !== undefined) throw invalidInput(problem);
  return body as Record<string, unknown>;
}

const LimitSchema = v.pipe(v.unknown(), v.transform(Number), v.integer("limit must be an integer"), v.minValue(1, "limit must be at least 1"), v.maxValue(1000, "limit must be at most 1000"));
const OffsetSchema = v.pipe(v.unknown(), v.transform(Number), v.integer("offset must be an integer"), v.minValue(0, "offset must be at least 0"));
// Event ids are the `seq` numbers this server sends; anything else is not an id of ours.
const LastEventIdSchema = v.pipe(v.string(), v.regex(/^\d{1,15}$/, "it must be the id of an event this server sent, a whole number"), v.transform(Number));
const ResourceIdSchema = v.pipe(v.string(), v.uuid("must be a UUID"));

/**
 * Builds the ACP server as a Hono app.
 * @example
 * const app = createApp([echo], { store: new MemoryStore() });
 * serve({ fetch: app.fetch, port: 8000 });
 */
export function createApp(agents: readonly Agent[], options: AppOptions): ACPApp {
  const { leaseMs = 30_000, storeTimeoutMs = 5_000, outageMs = 30_000, maxBodyBytes = 4 * 1024 * 1024, baseUrl } = options ?? ({} as AppOptions);
  if (!options?.store) throw new TypeError("[acp] createApp(): options.store is required (for example new MemoryStore())");
  const runtime = new Runtime({ store: options.store, agents, leaseMs, storeTimeoutMs, outageMs, history: options.history, limits: options.limits });
  // Built here so that a wrong option throws now, not on the first request.
  const corsMiddleware = options.cors === undefined ? undefined : acpCors(options.cors);
  const authMiddleware = options.auth === undefined ? undefined : apiKeyAuth(options.auth);
  // Every call below goes through the runtime's guarded store: bounded in time, failures are 503s.
  const store = runtime.store;
  const app = new Hono();

  const runIdParam = (c: Context): string => parse(RunIdSchema, c.req.param("run_id"), "run id");
  const origin = (c: Context): string => baseUrl ?? new URL(c.req.url).origin;

  app.onError((error, c) => {
    if (error instanceof ACPError) return c.json(error.toJSON(), error.status as 400);
    if (error instanceof StoreError) {
      // One line per failed request: an outage would otherwise flood the log with stack traces.
      console.error(`[acp] ${c.req.method} ${c.req.path} answered 503: ${error.message}`);
      return c.json({ code: "server_error", message: "The store is unavailable; try again shortly" }, 503);
    }
    console.error("[acp] request failed:", error);
    return c.json({ code: "server_error", message: "Internal server error" }, 500);
  });
  app.notFound((c) => c.json({ code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` }, 404));

  app.use(finishUnreadBody(maxBodyBytes));
  // CORS first (a preflight carries no key), then authentication, before any body is read.
  if (corsMiddleware) app.use(corsMiddleware);

  // Load balancers route by /ping: it fails while draining and while the store does not answer.
  // Registered before authentication, which it therefore never reaches: it needs no key wherever
  // the app is mounted (the auth middleware's own path check sees the mount's prefix).
  app.get("/ping", async (c) => {
    if (runtime.draining) return c.json({ code: "server_error", message: "This instance is shutting down" }, 503);
    try {
      await store.ping();
    } catch {
      return c.json({ code: "server_error", message: "The store is unavailable" }, 503);
    }
    return c.json({});
  });

  if (authMiddleware) app.use(authMiddleware);
  app.use(limitBody(maxBodyBytes));

  app.get("/agents", (c) => {
    const limit = parse(LimitSchema, c.req.query("limit") ?? 10, "query parameter limit");
    const offset = parse(OffsetSchema, c.req.query("offset") ?? 0, "query parameter offset");
    return c.json({ agents: runtime.agents.slice(offset, offset + limit).map((agent) => agent.manifest) });
  });

  app.get("/agents/:name", (c) => c.json(runtime.agent(c.req.param("name")).manifest));

  app.post("/runs", async (c) => {
    const request = parse(RunCreateRequestSchema, await readJson(c), "run request");
    const record = await runtime.createRun(request);
    const runId = record.run.run_id;
    c.header("Run-ID", runId);
    if (request.mode === "async") return c.json(record.run, 202);
    if (request.mode === "stream") return streamRunEvents(c, store, runId, 0, endsAtTerminalOrAwait);
    return c.json((await runtime.waitSettled(runId, record.version)).run);
  });

  app.get("/runs/:run_id", async (c) => c.json((await runtime.getRun(runIdParam(c))).run));

  app.post("/runs/:run_id", async (c) => {
    const runId = runIdParam(c);
    const request = parse(RunResumeRequestSchema, await readJson(c), "resume request");
    if (request.run_id != null && request.run_id !== runId) throw invalidInput(`run_id ${request.run_id} in the body differs from ${runId} in the path`);
    const { record, seq } = await runtime.resume(runId, request.await_resume);
    if (request.mode === "async") return c.json(record.run, 202);
    if (request.mode === "stream") return streamRunEvents(c, store, runId, seq - 1, endsAtTerminalOrAwait);
    return c.json((await runtime.waitSettled(runId, record.version)).run);
  });

  app.post("/runs/:run_id/cancel", async (c) => c.json((await runtime.cancel(runIdParam(c))).run, 202));

  app.get("/runs/:run_id/events", async (c) => {
    const runId = runIdParam(c);
    const record = await runtime.getRun(runId);
    if (requestHeader(c, "accept")?.includes("text/event-stream")) {
      const last = requestHeader(c, "last-event-id");
      const afterSeq = last === undefined ? 0 : parse(LastEventIdSchema, last, "Last-Event-ID header");
      // A finished run's terminal event is in its log: a client that saw it gets an empty stream, not one that never ends.
      if (isTerminal(record.run.status) && (await store.readEvents(runId, afterSeq, 1)).length === 0) {
        return c.body("", 200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      }
      return streamRunEvents(c, store, runId, afterSeq, endsAtTerminal);
    }
    const events: Event[] = (await store.readEvents(runId, 0)).map((stored) => stored.event);
    return c.json({ events });
  });

  const session = async (c: Context): Promise<Response> => {
    const sessionId = parse(SessionIdSchema, c.req.param("session_id"), "session id");
    const history = await store.getHistory(sessionId);
    if (!history) throw notFound(`Session ${sessionId} not found`);
    const base = origin(c);
    return c.json({ id: sessionId, history: history.map((item) => resourceUrl(base, item.id)) });
  };
  app.get("/sessions/:session_id", session);
  app.get("/session/:session_id", session);

  app.get("/resources/:resource_id", async (c) => {
    const id = parse(ResourceIdSchema, c.req.param("resource_id"), "resource id");
    const item = await store.getHistoryItem(id);
    if (!item) throw notFound(`Resource ${id} not found`);
    return c.json(item.message);
  });

  return Object.assign(app, {
    runtime,
    shutdown: (opts?: { deadlineMs?: number }) => runtime.shutdown(opts),
  });
}

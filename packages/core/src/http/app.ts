/**
 * `createApp()`: the ACP 0.2 HTTP API as a Hono app over a {@link Store}.
 */
import { type Context, type Handler, Hono } from "hono";
import type { Agent } from "../agent.ts";
import { ACPError, invalidInput, notFound } from "../errors.ts";
import { checkRequestLengths, RETRY_AFTER_SECONDS } from "../limits.ts";
import {
  type Event,
  isTerminal,
  RunCreateRequestSchema,
  RunIdSchema,
  RunResumeRequestSchema,
  SessionIdSchema,
} from "../models.ts";
import { RUNTIME_DEFAULTS, Runtime, type RuntimeOptions, type ShutdownOptions } from "../run/runtime.ts";
import { resourceUrl } from "../session.ts";
import { StoreError } from "../store.ts";
import { sessionStoreId } from "../tenant.ts";
import { type AuthOptions, apiKeyAuth } from "./auth.ts";
import { readJson } from "./body.ts";
import { ClientWatch } from "./client-gone.ts";
import { acpCors, type CorsOptions } from "./cors.ts";
import { addDocsRoutes, loadDocsPage } from "./docs.ts";
import { openApiDocument } from "./openapi.ts";
import { LastEventIdSchema, LimitSchema, OffsetSchema, parse, ResourceIdSchema } from "./params.ts";
import { type Access, pipeline } from "./pipeline.ts";
import { requestHeader } from "./request-header.ts";
import { originOf } from "./request-origin.ts";
import {
  endsAtTerminal,
  endsAtTerminalOrAwait,
  type OpenStream,
  SSE_KEEP_ALIVE_MS,
  SseStreams,
  streamRunEvents,
} from "./sse.ts";
import { requestTenant } from "./tenant.ts";

/** The options of {@link createApp}: the runtime's (see {@link RuntimeOptions}) plus the HTTP ones. */
export interface AppOptions extends Omit<RuntimeOptions, "agents"> {
  /** Largest accepted request body in bytes; larger ones get 413 without being read whole. @default 4_194_304 (4 MiB) */
  maxBodyBytes?: number;
  /**
   * Public base URL of the deployment (the load balancer's), used in session history URLs.
   * @default the origin of each request (its Host header)
   */
  baseUrl?: string;
  /**
   * API-key authentication: every request but `GET /ping`, `/openapi.json` and `/docs` needs one
   * of the keys, else it gets 401 (see {@link apiKeyAuth}).
   * @default undefined (no authentication: put the server behind something that authenticates)
   */
  auth?: AuthOptions;
  /**
   * CORS for browser clients on other origins (see {@link acpCors}).
   * @default undefined (no CORS headers: browsers allow same-origin calls only)
   */
  cors?: CorsOptions;
  /**
   * How often an SSE stream that sent nothing for that long gets a comment line (`: keep-alive`),
   * so that proxies do not close it as idle. @default 15_000
   */
  sseKeepAliveMs?: number;
  /**
   * Serve `GET /openapi.json`: the OpenAPI 3.1 document of this app's routes, generated from the
   * schemas that validate its requests. It describes the protocol, not any run: it needs no API key.
   * @default false, or true with `docs` (the demo turns it on)
   */
  openapi?: boolean;
  /**
   * Serve `GET /docs`: an API reference page (Swagger UI) of `/openapi.json`, every file of it
   * served by the app (nothing from another origin). Needs the optional peer dependency
   * `swagger-ui-dist`, loaded only when this is on; implies `openapi`. Needs no API key.
   * @default false (the demo turns it on)
   */
  docs?: boolean;
}

/** The default of every {@link AppOptions} field that has one: the runtime's and the HTTP layer's. */
export const APP_DEFAULTS = Object.freeze({
  ...RUNTIME_DEFAULTS,
  maxBodyBytes: 4 * 1024 * 1024,
  sseKeepAliveMs: SSE_KEEP_ALIVE_MS,
});

/** The response header that names the instance (its `runtime.instanceId`) that served the request. */
export const INSTANCE_HEADER = "acp-instance";

/** How long one store check answers `GET /ping`: an open health endpoint then costs the store at most one round trip a second. */
const PING_CACHE_MS = 1000;

/** The Hono app plus what its process needs to run it well. */
export type ACPApp = Hono & {
  /** This instance's runtime: its id, its runs, its orphan sweep. */
  readonly runtime: Runtime;
  /**
   * Graceful shutdown: `/ping` and `POST /runs` answer 503 from now on, runs in flight get until
   * `deadlineMs` to finish, the rest fail with a clear error.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
};

/**
 * Builds the ACP server as a Hono app.
 * @example
 * const app = createApp([echo], { store: new MemoryStore() });
 * serve({ fetch: app.fetch, port: 8000 });
 */
export function createApp(agents: readonly Agent[], options: AppOptions): ACPApp {
  if (!options?.store)
    throw new TypeError("[acp] createApp(): options.store is required (for example new MemoryStore())");
  const { maxBodyBytes = APP_DEFAULTS.maxBodyBytes, baseUrl, sseKeepAliveMs = APP_DEFAULTS.sseKeepAliveMs } = options;
  if (!Number.isInteger(sseKeepAliveMs) || sseKeepAliveMs < 1)
    throw new TypeError(
      `[acp] createApp(): sseKeepAliveMs must be a whole number of at least 1, got ${sseKeepAliveMs}`,
    );
  const { store: backend, leaseMs, storeTimeoutMs, outageMs, history, limits, logger, metrics: measure } = options;
  const runtime = new Runtime(
    { store: backend, agents, leaseMs, storeTimeoutMs, outageMs, history, limits, logger, metrics: measure },
    "createApp()",
  );
  // Built here so that a wrong option throws now, not on the first request.
  const corsMiddleware = options.cors === undefined ? undefined : acpCors(options.cors);
  for (const name of ["openapi", "docs"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean")
      throw new TypeError(`[acp] createApp(): ${name} must be true or false, got ${JSON.stringify(options[name])}`);
  }
  if (options.docs === true && options.openapi === false)
    throw new TypeError("[acp] createApp(): docs: true shows /openapi.json, which openapi: false turns off");
  const docsPage = options.docs === true ? loadDocsPage("createApp()") : undefined;
  const authMiddleware = options.auth === undefined ? undefined : apiKeyAuth(options.auth);
  // Every call below goes through the runtime's guarded store: bounded in time, failures are 503s.
  const store = runtime.store;
  const app = new Hono();
  const streams = new SseStreams(runtime.limits.maxStreams, sseKeepAliveMs, runtime.logger);
  /** The clients of sync requests still waiting for their run. */
  const clients = new ClientWatch();
  /** The latest store check of `/ping`, shared by the pings of the next second. */
  let storeCheck: { at: number; up: Promise<boolean> } | undefined;

  const runIdParam = (c: Context): string => parse(RunIdSchema, c.req.param("run_id"), "run id");
  const origin = (c: Context): string => baseUrl ?? originOf(c.req.url);

  const answerError = (error: Error, c: Context): Response => {
    if (error instanceof ACPError) {
      // At capacity or draining: a client (or a load balancer) may retry shortly, elsewhere or here.
      if (error.status === 503) c.header("retry-after", String(RETRY_AFTER_SECONDS));
      return c.json(error.toJSON(), error.status as 400);
    }
    if (error instanceof StoreError) {
      // One line per failed request: an outage would otherwise flood the log with stack traces.
      runtime.logger.error(
        { method: c.req.method, path: c.req.path, instance_id: runtime.instanceId, reason: error.message },
        `${c.req.method} ${c.req.path} answered 503`,
      );
      return c.json({ code: "server_error", message: "The store is unavailable; try again shortly" }, 503);
    }
    runtime.logger.error(
      { method: c.req.method, path: c.req.path, instance_id: runtime.instanceId, err: error },
      `${c.req.method} ${c.req.path} failed`,
    );
    return c.json({ code: "server_error", message: "Internal server error" }, 500);
  };
  // For routes an application adds to this app: its own go through the pipeline below.
  app.onError(answerError);

  const metrics = runtime.metrics;
  if (metrics !== undefined) streams.metrics = metrics;
  // The heartbeat and the orphan sweep start with the first request of any kind, not with the
  // first run: an instance that only answers reads still fails the runs of an instance that died.
  let starting = false;
  const startInstance = (): void => {
    if (starting || runtime.draining) return;
    starting = true;
    runtime.start().catch((error: unknown) => {
      starting = false;
      runtime.logger.error(
        { instance_id: runtime.instanceId, reason: (error as Error).message },
        "could not start this instance's heartbeat",
      );
    });
  };
  // Every answer says which instance served it (SSE, errors and refusals included): behind a load
  // balancer, a person or a client sees that several instances share one run. The id is a random
  // UUID per process, also in the logs and traces; it tells nothing about the host.
  const serve = pipeline({
    instanceHeader: [INSTANCE_HEADER, runtime.instanceId],
    onRequest: startInstance,
    metrics,
    maxBodyBytes,
    cors: corsMiddleware,
    auth: authMiddleware,
    onError: answerError,
  });
  const get = (path: string, handler: Handler, access: Access = "keyed") => app.get(path, serve(handler, access));
  const post = (path: string, handler: Handler) => app.post(path, serve(handler, "keyed"));
  // Unknown routes too: counted, traced, refused without a key before they are not found.
  const notFoundAnswer = serve(
    (c) => c.json({ code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` }, 404),
    "keyed",
  );
  app.notFound((c) => notFoundAnswer(c, async () => {}) as Promise<Response>);
  // A preflight may ask about any path; CORS answers it before anything else.
  if (corsMiddleware !== undefined)
    app.options(
      "*",
      serve((c) => c.json({ code: "not_found", message: `No route for OPTIONS ${c.req.path}` }, 404), "open"),
    );

  // Load balancers route by /ping: it fails while draining and while the store does not answer.
  // Registered before authentication, which it therefore never reaches: it needs no key wherever
  // the app is mounted (the auth middleware's own path check sees the mount's prefix).
  get(
    "/ping",
    async (c) => {
      if (runtime.draining) return c.json({ code: "server_error", message: "This instance is shutting down" }, 503);
      const now = Date.now();
      if (storeCheck === undefined || now - storeCheck.at >= PING_CACHE_MS) {
        storeCheck = {
          at: now,
          up: store.ping().then(
            () => true,
            () => false,
          ),
        };
      }
      if (!(await storeCheck.up)) return c.json({ code: "server_error", message: "The store is unavailable" }, 503);
      return c.json({});
    },
    "open",
  );

  // The API described, before authentication too: it tells the protocol, nothing of any run.
  if (options.openapi === true || docsPage !== undefined) {
    // Built once, when the app is: the same bytes for every request.
    const openapi = JSON.stringify(
      openApiDocument({
        metrics: metrics !== undefined,
        auth: authMiddleware !== undefined,
        docs: docsPage !== undefined,
      }),
    );
    get(
      "/openapi.json",
      (c) => c.body(openapi, 200, { "content-type": "application/json", "x-content-type-options": "nosniff" }),
      "open",
    );
  }
  if (docsPage !== undefined) addDocsRoutes((path, handler) => get(path, handler, "open"), docsPage);

  // Behind authentication when there is one: a scraper sends a key like any client.
  if (metrics !== undefined) {
    get("/metrics", async (c) => {
      const { body, contentType } = await metrics.render();
      return c.body(body, 200, { "content-type": contentType });
    });
  }

  /**
   * Runs `start` (a run's creation or resume) with a stream's place taken first when the answer is a
   * stream, so that a stream refused for `maxStreams` changes nothing and the client can retry it.
   */
  async function withStreamPlace<T>(stream: boolean, start: () => Promise<T>): Promise<[T, OpenStream | undefined]> {
    const place = stream ? streams.reserve() : undefined;
    try {
      return [await start(), place];
    } catch (error) {
      if (place !== undefined) streams.release(place);
      throw error;
    }
  }

  get("/agents", (c) => {
    const limit = parse(LimitSchema, c.req.query("limit") ?? 10, "query parameter limit");
    const offset = parse(OffsetSchema, c.req.query("offset") ?? 0, "query parameter offset");
    return c.json({ agents: runtime.agents.slice(offset, offset + limit).map((agent) => agent.manifest) });
  });

  get("/agents/:name", (c) => c.json(runtime.agent(c.req.param("name") ?? "").manifest));

  post("/runs", async (c) => {
    const body = await readJson(c, (raw) => checkRequestLengths(raw, runtime.limits));
    const request = parse(RunCreateRequestSchema, body, "run request");
    const [record, place] = await withStreamPlace(request.mode === "stream", () =>
      runtime.createRun(request, requestTenant(c), {
        origin: baseUrl === undefined ? originOf(c.req.url) : originOf(baseUrl),
      }),
    );
    const runId = record.run.run_id;
    c.header("Run-ID", runId);
    if (request.mode === "async") return c.json(record.run, 202);
    if (place !== undefined) return streamRunEvents(c, runtime.feeds, runId, 0, endsAtTerminalOrAwait, streams, place);
    return c.json((await settledOrCancelled(c, runId, record.version)).run);
  });

  get("/runs/:run_id", async (c) => c.json((await runtime.getRun(runIdParam(c), requestTenant(c))).run));

  post("/runs/:run_id", async (c) => {
    const runId = runIdParam(c);
    const request = parse(
      RunResumeRequestSchema,
      await readJson(c, (raw) => checkRequestLengths(raw, runtime.limits)),
      "resume request",
    );
    if (request.run_id != null && request.run_id !== runId)
      throw invalidInput(`run_id ${request.run_id} in the body differs from ${runId} in the path`);
    const [{ record, seq }, place] = await withStreamPlace(request.mode === "stream", () =>
      runtime.resume(runId, request.await_resume, requestTenant(c)),
    );
    if (request.mode === "async") return c.json(record.run, 202);
    if (place !== undefined)
      return streamRunEvents(c, runtime.feeds, runId, seq - 1, endsAtTerminalOrAwait, streams, place);
    return c.json((await runtime.whenSettled(runId, record.version)).run);
  });

  post("/runs/:run_id/cancel", async (c) => c.json((await runtime.cancel(runIdParam(c), requestTenant(c))).run, 202));

  get("/runs/:run_id/events", async (c) => {
    const runId = runIdParam(c);
    // Only its status is needed: the stored record (no output read from the log).
    const record = await runtime.getRecord(runId, requestTenant(c));
    if (requestHeader(c, "accept")?.includes("text/event-stream")) {
      const last = requestHeader(c, "last-event-id");
      const afterSeq = last === undefined ? 0 : parse(LastEventIdSchema, last, "Last-Event-ID header");
      // A finished run's terminal event is in its log: a client that saw it gets an empty stream, not one that never ends.
      if (isTerminal(record.run.status) && (await store.readEvents(runId, afterSeq, 1)).length === 0) {
        return c.body("", 200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      }
      return streamRunEvents(c, runtime.feeds, runId, afterSeq, endsAtTerminal, streams);
    }
    const events: Event[] = (await store.readEvents(runId, 0)).map((stored) => stored.event);
    return c.json({ events });
  });

  const session = async (c: Context): Promise<Response> => {
    const sessionId = parse(SessionIdSchema, c.req.param("session_id"), "session id");
    // Ids only: listing a long session does not read its messages.
    const summary = await store.getSession(sessionStoreId(sessionId, requestTenant(c)));
    if (!summary) throw notFound(`Session ${sessionId} not found`);
    const base = origin(c);
    return c.json({ id: sessionId, history: summary.itemIds.map((id) => resourceUrl(base, id)) });
  };
  get("/sessions/:session_id", session);
  get("/session/:session_id", session);

  get("/resources/:resource_id", async (c) => {
    const id = parse(ResourceIdSchema, c.req.param("resource_id"), "resource id");
    const item = await store.getHistoryItem(id);
    if (!item) throw notFound(`Resource ${id} not found`);
    return c.json(item.message);
  });

  /**
   * The settled run of a sync request. A client that goes away before its answer is the only one
   * who could learn the run's id: nobody else could ever read or cancel it, so it is cancelled.
   */
  async function settledOrCancelled(c: Context, runId: string, version: number) {
    const stopWatching = clients.watch(c.req.raw, () => {
      runtime.cancel(runId, requestTenant(c)).catch(() => {});
    });
    try {
      return await runtime.whenSettled(runId, version);
    } finally {
      stopWatching();
    }
  }

  return Object.assign(app, {
    runtime,
    shutdown: (opts?: ShutdownOptions) => runtime.shutdown(opts),
  });
}

/**
 * The OpenAPI 3.1 document of the routes {@link createApp} serves, served as `GET /openapi.json`.
 * Its schemas are generated from the valibot schemas that validate requests (`../models.ts`), so
 * the document cannot say something the server does not do.
 * @module
 */
import { type JsonSchema, toJsonSchemaDefs } from "@valibot/to-json-schema";
import type { GenericSchema } from "valibot";
import * as models from "../models.ts";
import { LimitSchema, MAX_EVENT_ID, OffsetSchema, ResourceIdSchema } from "./params.ts";

/** What the document depends on besides the models: the routes that are optional. */
export interface OpenApiDocumentOptions {
  /** `GET /metrics` is served (the app has metrics). */
  metrics?: boolean;
  /** Requests need an API key (the app has `auth`). */
  auth?: boolean;
  /** `GET /docs` and its files are served (the app has `docs`). */
  docs?: boolean;
}

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const errorRef = (description: string): Json => ({
  description,
  content: { "application/json": { schema: ref("Error") } },
});
const json = (description: string, schema: Json): Json => ({
  description,
  content: { "application/json": { schema } },
});

/**
 * Fields a request may leave out that the server fills in (a default): required in what it sends.
 * These components' nulls are dropped too (a client may send `null` for "none"; the server omits it).
 * The schema of an answer names the component without a suffix (`Message`), as the ACP document
 * does; the request's twin is `MessageInput`.
 */
const SERVER_FILLED: Readonly<Record<string, readonly string[]>> = {
  Message: ["role"],
  MessagePart: ["content_type", "content_encoding"],
  CitationMetadata: ["kind"],
  TrajectoryMetadata: ["kind"],
};

/** Components that only requests carry: converted with the `…Input` twins of the messages. */
const REQUEST_ONLY = ["RunCreateRequest", "RunResumeRequest", "AwaitResume", "Session"];

/** The models of the messages, whose input and output differ (see {@link SERVER_FILLED}). */
const MESSAGE_MODELS = ["Message", "MessagePart", "MetadataPart", "CitationMetadata", "TrajectoryMetadata"];

const convert = (definitions: Record<string, GenericSchema>): Record<string, JsonSchema> =>
  toJsonSchemaDefs(definitions, {
    target: "draft-2020-12",
    // `ignore`: the custom "not an array" check and the transforms that drop nulls have no JSON Schema form.
    errorMode: "ignore",
    overrideRef: ({ referenceId }) => `#/components/schemas/${referenceId}`,
  });

/**
 * The component schemas: every `XSchema` of the models module becomes `X`, the name the ACP
 * document gives it. Built with valibot's own converter; what JSON Schema cannot say (a custom
 * check, a transform) is left out, so the document describes a little more than the server accepts.
 *
 * A message is described twice: `Message` as the server sends it (the defaults filled in, so
 * `role` is required, as in the ACP document) and `MessageInput` as a request may send it (`role`
 * may be left out: it defaults to `"user"`); likewise its parts and their metadata.
 */
function componentSchemas(): Record<string, JsonSchema> {
  const definitions: Record<string, GenericSchema> = {};
  for (const [name, value] of Object.entries(models)) {
    if (name.endsWith("Schema") && typeof value === "object" && value !== null)
      definitions[name.slice(0, -"Schema".length)] = value as GenericSchema;
  }
  const output = convert(definitions);
  for (const [name, fields] of Object.entries(SERVER_FILLED)) {
    const schema = output[name] as { required?: string[]; properties?: Record<string, JsonSchema> };
    if (schema?.properties === undefined) throw new Error(`[acp] openapi: no object schema ${name} in the models`);
    schema.required = [...new Set([...(schema.required ?? []), ...fields])];
    // The server drops the nulls of a message it keeps: what it sends has a value or no field.
    for (const [field, property] of Object.entries(schema.properties)) schema.properties[field] = nonNull(property);
  }
  // The same valibot schemas under the input names: the requests' references then point at those.
  const inputDefinitions: Record<string, GenericSchema> = { ...definitions };
  for (const name of MESSAGE_MODELS) {
    inputDefinitions[`${name}Input`] = definitions[name]!;
    delete inputDefinitions[name];
  }
  const input = convert(inputDefinitions);
  const components: Record<string, JsonSchema> = { ...output };
  for (const name of [...REQUEST_ONLY, ...MESSAGE_MODELS.map((model) => `${model}Input`)])
    components[name] = input[name]!;
  return components;
}

/** A schema without its "or null" branch: `anyOf: [X, { type: "null" }]` becomes X. */
function nonNull(schema: JsonSchema): JsonSchema {
  const branches = (schema as { anyOf?: JsonSchema[] }).anyOf;
  if (!Array.isArray(branches)) return schema;
  const rest = branches.filter((branch) => (branch as { type?: unknown }).type !== "null");
  return rest.length === 1 ? rest[0]! : schema;
}

/** A JSON schema of a query or header parameter, from the schema that parses it. */
const parameterSchema = (schema: GenericSchema, fallback: Json): Json => {
  const converted = toJsonSchemaDefs({ parameter: schema }, { target: "draft-2020-12", errorMode: "ignore" })
    .parameter as Json;
  // `v.unknown()` piped into `Number` converts to `{}` plus bounds: say it is an integer.
  return { ...fallback, ...converted };
};

const SSE_DESCRIPTION =
  "Server-Sent Events: each frame is `data: <Event as JSON>` and `id: <seq>`, the event's position in its run. " +
  "A client whose connection broke sends the last id it saw as `Last-Event-ID` to `GET /runs/{run_id}/events` (on any instance). " +
  "Idle streams get a `: keep-alive` comment line.";

/**
 * The schema of an SSE answer: each frame's `data` is one Event. OpenAPI 3.1 has no field for the
 * items of a stream (3.2's `itemSchema`), nor a description of a media type: the schema carries it.
 */
const sseSchema: Json = { ...ref("Event"), description: SSE_DESCRIPTION };

/** The 200 answer of a run request: the run (sync) or its events (stream). */
const runOrStream = (description: string): Json => ({
  description,
  headers: { "Run-ID": { description: "The run's id", schema: ref("RunId") } },
  content: {
    "application/json": { schema: ref("Run") },
    "text/event-stream": { schema: sseSchema },
  },
});

const pathParameter = (name: string, description: string, schema: Json): Json => ({
  name,
  in: "path",
  required: true,
  description,
  schema,
});

/** The error answers every request may get, besides `default`. */
function commonErrors(options: OpenApiDocumentOptions): Json {
  return {
    ...(options.auth ? { "401": { $ref: "#/components/responses/Unauthorized" } } : {}),
    "503": { $ref: "#/components/responses/Unavailable" },
    default: { $ref: "#/components/responses/Error" },
  };
}

/** The error answers of a request that needs no API key. */
const publicErrors: Json = {
  "503": { $ref: "#/components/responses/Unavailable" },
  default: { $ref: "#/components/responses/Error" },
};

/** Errors of requests that carry a JSON body. */
const bodyErrors: Json = {
  "400": errorRef("The body is not JSON, is empty or is not an object"),
  "413": errorRef("The body is larger than `maxBodyBytes` (the connection closes)"),
  "415": errorRef("The Content-Type is not JSON"),
  "422": errorRef("The body does not match the request schema (`invalid_input`)"),
};

/**
 * The OpenAPI 3.1 document of an app with these options. Build it once: it walks every model.
 * @example
 * const document = openApiDocument({ metrics: true });
 */
export function openApiDocument(options: OpenApiDocumentOptions = {}): Json {
  const errors = commonErrors(options);
  const runId = pathParameter("run_id", "The run's id", ref("RunId"));
  const sessionOperation = (operationId: string, extra: Json): Json => ({
    get: {
      tags: ["session"],
      operationId,
      parameters: [pathParameter("session_id", "The session's id", ref("SessionId"))],
      responses: {
        "200": json("The session: its id and the URLs of its history items", ref("SessionResponse")),
        "404": errorRef("No such session"),
        ...errors,
      },
      ...extra,
    },
  });

  const paths: Json = {
    "/ping": {
      get: {
        operationId: "ping",
        summary: "Health check",
        description:
          "Answers 200 while this instance serves and its store answers, 503 while it drains or the store does not answer. Needs no API key.",
        security: [],
        responses: {
          "200": json("Up", { type: "object" }),
          "503": errorRef("Shutting down, or the store is unavailable"),
          default: { $ref: "#/components/responses/Error" },
        },
      },
    },
    "/agents": {
      get: {
        tags: ["agent"],
        operationId: "listAgents",
        summary: "The agents",
        parameters: [
          {
            name: "limit",
            in: "query",
            description: "How many agents at most",
            schema: parameterSchema(LimitSchema, { type: "integer", default: 10 }),
          },
          {
            name: "offset",
            in: "query",
            description: "How many agents to skip",
            schema: parameterSchema(OffsetSchema, { type: "integer", default: 0 }),
          },
        ],
        responses: {
          "200": json("A page of agent manifests", ref("AgentsListResponse")),
          "422": errorRef("limit or offset out of range"),
          ...errors,
        },
      },
    },
    "/agents/{name}": {
      get: {
        tags: ["agent"],
        operationId: "getAgent",
        summary: "An agent's manifest",
        parameters: [pathParameter("name", "The agent's name", ref("AgentName"))],
        responses: {
          "200": json("The manifest", ref("AgentManifest")),
          "404": errorRef("No such agent"),
          ...errors,
        },
      },
    },
    "/runs": {
      post: {
        tags: ["run"],
        operationId: "createRun",
        summary: "Start a run",
        description:
          "`mode` decides the answer: `sync` waits for the run to end or await (200, the run), `async` answers at once (202), `stream` sends the run's events until it ends or awaits (200, text/event-stream).",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: ref("RunCreateRequest"),
              example: { agent_name: "echo", input: [{ role: "user", parts: [{ content: "Hello" }] }], mode: "sync" },
            },
          },
        },
        responses: {
          "200": runOrStream("The settled run (sync), or its events (stream)"),
          "202": {
            ...json("The run, started (async)", ref("Run")),
            headers: { "Run-ID": { description: "The run's id", schema: ref("RunId") } },
          },
          ...bodyErrors,
          "404": errorRef("No such agent"),
          ...errors,
        },
      },
    },
    "/runs/{run_id}": {
      get: {
        tags: ["run"],
        operationId: "getRun",
        summary: "A run",
        parameters: [runId],
        responses: { "200": json("The run", ref("Run")), "404": errorRef("No such run"), ...errors },
      },
      post: {
        tags: ["run"],
        operationId: "resumeRun",
        summary: "Answer an awaiting run",
        parameters: [runId],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: ref("RunResumeRequest"),
              example: {
                await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } },
                mode: "sync",
              },
            },
          },
        },
        responses: {
          "200": runOrStream("The settled run (sync), or its events from the resume on (stream)"),
          "202": json("The run, resumed (async)", ref("Run")),
          ...bodyErrors,
          "404": errorRef("No such run"),
          "403": errorRef("The run does not await, or awaits another kind of answer"),
          ...errors,
        },
      },
    },
    "/runs/{run_id}/cancel": {
      post: {
        tags: ["run"],
        operationId: "cancelRun",
        summary: "Cancel a run",
        parameters: [runId],
        responses: {
          "202": json("The run, cancelling", ref("Run")),
          "403": errorRef("The run has already ended"),
          "404": errorRef("No such run"),
          ...errors,
        },
      },
    },
    "/runs/{run_id}/events": {
      get: {
        tags: ["run"],
        operationId: "listRunEvents",
        summary: "A run's events",
        description:
          "With `Accept: text/event-stream`, the events as Server-Sent Events from `Last-Event-ID` on, until the run ends; otherwise every event so far as JSON.",
        parameters: [
          runId,
          {
            name: "Last-Event-ID",
            in: "header",
            description: "The id (seq) of the last event the client saw; the stream starts after it",
            schema: { type: "string", pattern: "^\\d{1,15}$", "x-maximum": MAX_EVENT_ID },
          },
        ],
        responses: {
          "200": {
            description: "The run's events",
            content: {
              "application/json": { schema: ref("RunEventsListResponse") },
              "text/event-stream": { schema: sseSchema },
            },
          },
          "404": errorRef("No such run"),
          "422": errorRef("Last-Event-ID is not an event id of this server"),
          ...errors,
        },
      },
    },
    "/sessions/{session_id}": sessionOperation("getSession", { summary: "A session" }),
    // The ACP document's spelling; the same answer.
    "/session/{session_id}": sessionOperation("getSessionAlias", {
      summary: "A session (the ACP document's path)",
    }),
    "/resources/{resource_id}": {
      get: {
        tags: ["session"],
        operationId: "getResource",
        summary: "A session's history item",
        parameters: [
          pathParameter(
            "resource_id",
            "The item's id",
            toJsonSchemaDefs({ id: ResourceIdSchema }, { target: "draft-2020-12" }).id as Json,
          ),
        ],
        responses: { "200": json("The message", ref("Message")), "404": errorRef("No such item"), ...errors },
      },
    },
    "/openapi.json": {
      get: {
        tags: ["meta"],
        operationId: "getOpenApiDocument",
        summary: "This document",
        description: "Describes the protocol, nothing of any run: needs no API key.",
        security: [],
        responses: {
          "200": json("The OpenAPI 3.1 document of this server", { type: "object" }),
          ...publicErrors,
        },
      },
    },
  };
  if (options.docs) {
    paths["/docs"] = {
      get: {
        tags: ["meta"],
        operationId: "getApiReference",
        summary: "The API reference page",
        description:
          "An HTML page (Swagger UI) that renders `/openapi.json`. Every file it loads is served under `/docs/` by this server; nothing comes from another origin. Needs no API key.",
        security: [],
        responses: {
          "200": { description: "The page", content: { "text/html": { schema: { type: "string" } } } },
          "304": { description: "The client's copy (`If-None-Match`) is current" },
          ...publicErrors,
        },
      },
    };
    paths["/docs/"] = {
      get: {
        tags: ["meta"],
        operationId: "redirectApiReference",
        summary: "Sends the browser to /docs",
        security: [],
        responses: {
          "308": {
            description: "To `../docs`, the page (its URLs are relative to it)",
            headers: { Location: { schema: { type: "string" } } },
          },
          ...publicErrors,
        },
      },
    };
    paths["/docs/{file}"] = {
      get: {
        tags: ["meta"],
        operationId: "getApiReferenceFile",
        summary: "A file of the API reference page",
        security: [],
        parameters: [pathParameter("file", "The file's name, as the page names it", { type: "string" })],
        responses: {
          "200": {
            description: "The file: a script, a style sheet or an image",
            content: {
              "text/javascript": { schema: { type: "string" } },
              "text/css": { schema: { type: "string" } },
              "image/png": { schema: { type: "string", contentMediaType: "image/png" } },
            },
          },
          "304": { description: "The client's copy (`If-None-Match`) is current" },
          "404": errorRef("No such file"),
          ...publicErrors,
        },
      },
    };
  }
  if (options.metrics) {
    paths["/metrics"] = {
      get: {
        operationId: "getMetrics",
        summary: "Prometheus metrics of this instance",
        responses: {
          "200": {
            description: "The Prometheus text format",
            content: { "text/plain": { schema: { type: "string" } } },
          },
          ...errors,
        },
      },
    };
  }

  const document: Json = {
    openapi: "3.1.1",
    info: {
      title: "ACP - Agent Communication Protocol",
      description:
        "An ACP 0.2 server. Generated from the schemas the server validates requests with. Error answers are ACP errors: `{ code, message, data? }`.",
      version: "0.2.0",
      license: { name: "Apache 2.0", identifier: "Apache-2.0" },
    },
    // Relative to where the document is served: the server that serves it, under any path prefix.
    servers: [{ url: ".", description: "The server that serves this document" }],
    tags: [
      { name: "agent", description: "The agents this server runs" },
      { name: "run", description: "Runs: start, read, resume, cancel, follow" },
      { name: "session", description: "Sessions and their history" },
      { name: "meta", description: "This description of the API" },
    ],
    paths,
    components: {
      schemas: componentSchemas(),
      responses: {
        Error: errorRef("An ACP error"),
        Unavailable: {
          ...errorRef("At capacity, draining, or the store is unavailable: retry shortly"),
          headers: { "Retry-After": { description: "Seconds to wait", schema: { type: "integer" } } },
        },
        ...(options.auth ? { Unauthorized: errorRef("No API key, or not one of the accepted keys") } : {}),
      },
      ...(options.auth
        ? {
            securitySchemes: {
              bearer: { type: "http", scheme: "bearer", description: "`Authorization: Bearer <key>`" },
              apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
            },
          }
        : {}),
    },
  };
  if (options.auth) document.security = [{ bearer: [] }, { apiKey: [] }];
  return document;
}

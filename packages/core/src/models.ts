/**
 * ACP 0.2 models as valibot schemas, one per component of the OpenAPI document, with the
 * TypeScript types inferred from them. Input schemas accept `null` wherever the official clients
 * send it for an absent field, and drop it, so what we store and send back is the spec's shape.
 *
 * Published as `@acp/core/models`; the root `@acp/core` exports the types and `isTerminal` /
 * `isSettled` only.
 * @example
 * import * as v from "valibot";
 * import { RunCreateRequestSchema } from "@acp/core/models";
 *
 * const request = v.parse(RunCreateRequestSchema, await response.json());
 * @module
 */
import * as v from "valibot";

/** Removes keys whose value is `null` or `undefined`: clients send `null` for "absent". */
function dropNulls<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) if (item !== null && item !== undefined) out[key] = item;
  return out as T;
}

const text = v.string();
const isoDateTime = v.pipe(v.string(), v.isoTimestamp("must be an ISO 8601 date-time"));
const uuid = (what: string) => v.pipe(v.string(), v.uuid(`${what} must be a UUID`));

export const ErrorCodeSchema = v.picklist(["server_error", "invalid_input", "not_found"]);
export type ErrorCode = v.InferOutput<typeof ErrorCodeSchema>;

export const ErrorSchema = v.object({
  code: ErrorCodeSchema,
  message: text,
  data: v.nullish(v.record(v.string(), v.unknown())),
});
export type ErrorModel = v.InferOutput<typeof ErrorSchema>;

export const SessionIdSchema = uuid("session id");
export const RunIdSchema = uuid("run id");
export const RunStatusSchema = v.picklist([
  "created",
  "in-progress",
  "awaiting",
  "cancelling",
  "cancelled",
  "completed",
  "failed",
]);
export type RunStatus = v.InferOutput<typeof RunStatusSchema>;
export const TERMINAL_STATUSES: readonly RunStatus[] = ["completed", "failed", "cancelled"];
/** The run has ended: completed, failed or cancelled. */
export function isTerminal(status: RunStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}
/** The run has settled: it stopped moving until someone acts (it ended, or awaits a resume). */
export function isSettled(status: RunStatus): boolean {
  return status === "awaiting" || isTerminal(status);
}

export const RunModeSchema = v.picklist(["sync", "async", "stream"], "mode must be sync, async or stream");
export type RunMode = v.InferOutput<typeof RunModeSchema>;

export const AgentNameSchema = v.pipe(
  v.string("agent_name must be a string"),
  v.minLength(1, "agent_name must not be empty"),
  v.maxLength(63, "agent_name must be at most 63 characters"),
  v.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "agent_name must be an RFC 1123 DNS label"),
);

/**
 * valibot's object and record schemas take an array for an object, its indexes as keys: `parts:
 * [[]]` would be read as one empty part. Every object a client sends goes through this first.
 */
const notAnArray = v.custom<unknown>((input) => !Array.isArray(input), "must be an object, not an array");
/** A record of a request: an object with any keys, not an array. */
const inputRecord = v.pipe(notAnArray, v.record(v.string(), v.unknown()));

const optionalText = v.nullish(v.string());
const optionalInt = v.nullish(v.pipe(v.number(), v.integer()));

export const CitationMetadataSchema = v.pipe(
  v.object({
    kind: v.optional(v.literal("citation"), "citation"),
    start_index: optionalInt,
    end_index: optionalInt,
    url: optionalText,
    title: optionalText,
    description: optionalText,
  }),
  v.transform(dropNulls),
);

export const TrajectoryMetadataSchema = v.pipe(
  v.object({
    kind: v.optional(v.literal("trajectory"), "trajectory"),
    message: optionalText,
    tool_name: optionalText,
    tool_input: v.nullish(inputRecord),
    tool_output: v.nullish(inputRecord),
  }),
  v.transform(dropNulls),
);

export const MetadataPartSchema = v.pipe(
  notAnArray,
  v.variant("kind", [CitationMetadataSchema, TrajectoryMetadataSchema]),
);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const MessagePartSchema = v.pipe(
  notAnArray,
  v.object({
    name: optionalText,
    content_type: v.optional(v.nullable(v.string()), "text/plain"),
    content: optionalText,
    content_encoding: v.optional(
      v.nullable(v.picklist(["plain", "base64"], "content_encoding must be plain or base64")),
      "plain",
    ),
    content_url: v.nullish(v.pipe(v.string(), v.url("content_url must be a URL"))),
    metadata: v.nullish(MetadataPartSchema),
  }),
  v.check(
    (part) => part.content == null || part.content_url == null,
    "a part has either content or content_url, not both",
  ),
  v.check(
    (part) => part.content_encoding !== "base64" || part.content == null || BASE64.test(part.content),
    "content is not valid base64",
  ),
  v.transform((part) => {
    const out = dropNulls(part);
    out.content_type ??= "text/plain";
    out.content_encoding ??= "plain";
    return out as MessagePartOut;
  }),
);
interface MessagePartOut {
  name?: string;
  content_type: string;
  content?: string;
  content_encoding: "plain" | "base64";
  content_url?: string;
  metadata?: v.InferOutput<typeof MetadataPartSchema>;
}
export type MessagePart = MessagePartOut;

export const RoleSchema = v.pipe(
  v.string("role must be a string"),
  v.regex(/^(user|agent(\/[a-zA-Z0-9_-]+)?)$/, 'role must be "user", "agent" or "agent/<name>"'),
);

export const MessageSchema = v.pipe(
  notAnArray,
  v.object({
    role: v.optional(RoleSchema, "user"),
    parts: v.pipe(
      v.array(MessagePartSchema, "parts must be an array"),
      v.minLength(1, "a message needs at least one part"),
    ),
    created_at: v.nullish(isoDateTime),
    completed_at: v.nullish(isoDateTime),
  }),
  v.transform(dropNulls),
);
export type Message = v.InferOutput<typeof MessageSchema>;

/** What an agent asks the client for when it awaits; ACP 0.2 defines the `message` kind. */
export const AwaitRequestSchema = v.object({ type: v.literal("message"), message: MessageSchema });
export type AwaitRequest = v.InferOutput<typeof AwaitRequestSchema>;
export const AwaitResumeSchema = v.pipe(
  notAnArray,
  v.object(
    { type: v.literal("message", 'await_resume.type must be "message"'), message: MessageSchema },
    "await_resume must be an object",
  ),
);
export type AwaitResume = v.InferOutput<typeof AwaitResumeSchema>;

export const SessionSchema = v.pipe(
  notAnArray,
  v.object({
    id: SessionIdSchema,
    history: v.optional(v.array(v.pipe(v.string(), v.url("history items must be URLs"))), []),
    state: v.nullish(v.pipe(v.string(), v.url("state must be a URL"))),
  }),
);
export type Session = v.InferOutput<typeof SessionSchema>;

export const RunSchema = v.object({
  agent_name: AgentNameSchema,
  session_id: v.optional(SessionIdSchema),
  run_id: RunIdSchema,
  status: RunStatusSchema,
  await_request: v.nullish(AwaitRequestSchema),
  output: v.array(MessageSchema),
  error: v.nullish(ErrorSchema),
  created_at: isoDateTime,
  finished_at: v.optional(isoDateTime),
});
export type Run = v.InferOutput<typeof RunSchema>;

export const RunCreateRequestSchema = v.pipe(
  v.object({
    agent_name: AgentNameSchema,
    session_id: v.nullish(SessionIdSchema),
    session: v.nullish(SessionSchema),
    input: v.pipe(
      v.array(MessageSchema, "input must be an array of messages"),
      v.minLength(1, "input must not be empty"),
    ),
    mode: v.optional(v.nullable(RunModeSchema), "sync"),
  }),
  v.check(
    (body) => body.session == null || body.session_id == null || body.session.id === body.session_id,
    "session_id and session.id differ",
  ),
);
export type RunCreateRequest = v.InferOutput<typeof RunCreateRequestSchema>;

export const RunResumeRequestSchema = v.object({
  run_id: v.nullish(RunIdSchema),
  await_resume: AwaitResumeSchema,
  mode: v.optional(v.nullable(RunModeSchema), "sync"),
});
export type RunResumeRequest = v.InferOutput<typeof RunResumeRequestSchema>;

export const TimestampSchema = isoDateTime;
export const PersonSchema = v.looseObject({
  name: v.string(),
  email: v.optional(v.string()),
  url: v.optional(v.string()),
});
export const LinkSchema = v.object({
  type: v.picklist(["source-code", "container-image", "homepage", "documentation"]),
  url: v.string(),
});
export const AgentDependencySchema = v.object({
  type: v.optional(v.picklist(["agent", "tool", "model"])),
  name: v.optional(v.string()),
});
export const CapabilitySchema = v.object({ name: v.string(), description: v.string() });
/** A free tag, or one of the well-known ones (Chat, RAG, Canvas, Code, Researcher, Orchestrator). */
export const TagSchema = v.string();
export const JsonSchemaSchema = v.record(v.string(), v.unknown());
export const GeneralSchemaSchema = v.union([JsonSchemaSchema, v.picklist(["chat", "text"])]);

export const MetadataSchema = v.looseObject({
  annotations: v.optional(v.record(v.string(), v.unknown())),
  documentation: v.optional(v.string()),
  license: v.optional(v.string()),
  programming_language: v.optional(v.string()),
  natural_languages: v.optional(v.array(v.string())),
  framework: v.optional(v.string()),
  capabilities: v.optional(v.array(CapabilitySchema)),
  domains: v.optional(v.array(v.string())),
  tags: v.optional(v.array(TagSchema)),
  created_at: v.optional(TimestampSchema),
  updated_at: v.optional(TimestampSchema),
  author: v.optional(PersonSchema),
  contributors: v.optional(v.array(PersonSchema)),
  links: v.optional(v.array(LinkSchema)),
  dependencies: v.optional(v.array(AgentDependencySchema)),
  recommended_models: v.optional(v.array(v.string())),
});
export type Metadata = v.InferOutput<typeof MetadataSchema>;

export const StatusSchema = v.object({
  avg_run_tokens: v.optional(v.pipe(v.number(), v.minValue(0))),
  avg_run_time_seconds: v.optional(v.pipe(v.number(), v.minValue(0))),
  success_rate: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(100))),
});

export const AgentManifestSchema = v.object({
  name: AgentNameSchema,
  description: v.string(),
  input_content_types: v.pipe(v.array(v.string()), v.minLength(1)),
  output_content_types: v.pipe(v.array(v.string()), v.minLength(1)),
  metadata: v.optional(MetadataSchema),
  status: v.optional(StatusSchema),
});
export type AgentManifest = v.InferOutput<typeof AgentManifestSchema>;

const runEvent = <T extends string>(type: T) => v.object({ type: v.literal(type), run: RunSchema });
const messageEvent = <T extends string>(type: T) => v.object({ type: v.literal(type), message: MessageSchema });

export const MessageCreatedEventSchema = messageEvent("message.created");
export const MessagePartEventSchema = v.object({ type: v.literal("message.part"), part: MessagePartSchema });
export const MessageCompletedEventSchema = messageEvent("message.completed");
export const GenericEventSchema = v.object({ type: v.literal("generic"), generic: v.record(v.string(), v.unknown()) });
export const RunCreatedEventSchema = runEvent("run.created");
export const RunInProgressEventSchema = runEvent("run.in-progress");
export const RunAwaitingEventSchema = runEvent("run.awaiting");
export const RunCompletedEventSchema = runEvent("run.completed");
export const RunFailedEventSchema = runEvent("run.failed");
export const RunCancelledEventSchema = runEvent("run.cancelled");
export const ErrorEventSchema = v.object({ type: v.literal("error"), error: ErrorSchema });

export const EventSchema = v.variant("type", [
  MessageCreatedEventSchema,
  MessagePartEventSchema,
  MessageCompletedEventSchema,
  GenericEventSchema,
  RunCreatedEventSchema,
  RunInProgressEventSchema,
  RunAwaitingEventSchema,
  RunCompletedEventSchema,
  RunFailedEventSchema,
  RunCancelledEventSchema,
  ErrorEventSchema,
]);
export type Event = v.InferOutput<typeof EventSchema>;
export type RunEventType =
  | "run.created"
  | "run.in-progress"
  | "run.awaiting"
  | "run.completed"
  | "run.failed"
  | "run.cancelled";

export const AgentsListResponseSchema = v.object({ agents: v.array(AgentManifestSchema) });
export const RunEventsListResponseSchema = v.object({ events: v.array(EventSchema) });
export const SessionResponseSchema = v.object({
  id: SessionIdSchema,
  history: v.array(v.string()),
  state: v.optional(v.string()),
});

/**
 * The agent API: a manifest plus a handler, usually an async generator.
 */
import * as v from "valibot";
import {
  type AgentManifest,
  AgentNameSchema,
  type AwaitResume,
  type Message,
  type MessagePart,
  type Metadata,
  MetadataSchema,
} from "./models.ts";

/** A session's earlier messages, read from the store so that any instance can serve them. */
export interface SessionHandle {
  /** The session's history in order: inputs and outputs of its earlier runs. */
  loadHistory(): AsyncIterable<Message>;
}

/** What a handler gets besides its input. */
export interface AgentContext {
  runId: string;
  sessionId: string;
  session: SessionHandle;
  /** Aborts when the run is cancelled (or the server gives the run up): stop work then. */
  signal: AbortSignal;
}

/** @deprecated use {@link AgentContext} (this name clashes with Hono's `Context`). */
export type Context = AgentContext;

/** A part as a handler may yield it: content type and encoding may be left out. */
export type PartInput = Omit<MessagePart, "content_type" | "content_encoding"> & {
  content_type?: string;
  content_encoding?: "plain" | "base64";
};

/** A whole message as a handler may yield it: the role defaults to `agent/<name>`. */
export interface MessageInput {
  role?: string;
  parts: PartInput[];
}

/** Asks the client for a message; the run goes to `awaiting` and the `yield` returns the resume. */
export interface AwaitRequestInput {
  type: "message";
  message: MessageInput;
}

/**
 * What a handler may yield: text (a `text/plain` part), a part (one with `name` is an
 * artifact), a whole message, an await request, or any other plain object (a `generic` event).
 */
export type Yielded =
  | string
  | PartInput
  | MessageInput
  | AwaitRequestInput
  | Record<string, unknown>
  | null
  | undefined;

export type AgentGenerator = AsyncGenerator<Yielded, unknown, AwaitResume | undefined>;

/** An async generator function, or an async function whose return value is yielded once. */
export type AgentHandler = (
  input: Message[],
  ctx: AgentContext,
) => AgentGenerator | Promise<Yielded | Yielded[]> | Yielded;

export interface AgentOptions {
  /** RFC 1123 DNS label: lower-case letters, digits and dashes. */
  name: string;
  /** @default "" */
  description?: string;
  metadata?: Metadata;
  /** @default ["*\/*"] */
  input_content_types?: string[];
  /** @default ["*\/*"] */
  output_content_types?: string[];
}

export interface Agent {
  readonly manifest: AgentManifest;
  readonly handler: AgentHandler;
}

/**
 * Declares an agent.
 * @example
 * const echo = agent({ name: "echo", description: "Echoes its input" },
 *   async function* (input) { for (const message of input) yield message; });
 */
export function agent(options: AgentOptions, handler: AgentHandler): Agent {
  const name = v.safeParse(AgentNameSchema, options.name);
  if (!name.success)
    throw new TypeError(`[acp] agent(): invalid name ${JSON.stringify(options.name)}: ${name.issues[0].message}`);
  if (typeof handler !== "function")
    throw new TypeError(`[acp] agent(): the handler of "${options.name}" must be a function`);
  const metadata = options.metadata === undefined ? undefined : v.parse(MetadataSchema, options.metadata);
  const manifest: AgentManifest = {
    name: name.output,
    description: options.description ?? "",
    input_content_types: options.input_content_types ?? ["*/*"],
    output_content_types: options.output_content_types ?? ["*/*"],
    ...(metadata === undefined ? {} : { metadata }),
  };
  return { manifest, handler };
}

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
  /**
   * Aborts when the run is cancelled (or the server gives the run up, or, for a durable run,
   * another instance took it over): stop work then.
   */
  signal: AbortSignal;
  /**
   * How many times this run's handler has been started: 1 on the first execution; for a durable
   * run, one more each time another instance took the run over and replayed its handler.
   */
  readonly attempt: number;
  /**
   * Runs `fn` as a named step and returns its value. In a durable run (`agent({ durable: true })`)
   * the step's value (as JSON) or the message of the error it threw is recorded in the store
   * before `step` returns; when another instance takes the run over and replays the handler, the
   * n-th `step` call returns (or throws, as an `Error` with the recorded message) what was
   * recorded, without calling `fn` again. The value goes through JSON on the first execution
   * too (`undefined` becomes `null`, a `Date` a string), so that both see the same value. Put in
   * steps whatever must not run twice or may differ between executions: network and LLM calls,
   * clocks, random numbers. A replay that calls steps in another order than recorded fails the
   * run ("durable run diverged on replay"). Results larger than `limits.maxStepBytes` fail the step.
   *
   * In a run that is not durable, `fn` simply runs each time. `fn` gets an AbortSignal that aborts
   * when the run is cancelled or, for a durable run, taken over by another instance.
   * @param name names the step (not empty; names starting with `acp:` are reserved).
   * @example
   * const quote = await ctx.step("quote", (signal) => fetchQuote(input, { signal }));
   */
  step<T>(name: string, fn: (signal: AbortSignal) => Promise<T> | T): Promise<T>;
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
  /**
   * Its runs survive the loss of their instance: another instance takes a run over (when the
   * owner's lease runs out, when it drains, or when a resume arrives for a run whose owner is
   * gone) and replays the handler with the same input, `ctx.step` results and resumes recorded
   * in the store, dropping what the log holds already. The handler must then do the same thing
   * again outside its steps (see {@link AgentContext.step}). @default false
   */
  durable?: boolean;
}

export interface Agent {
  readonly manifest: AgentManifest;
  readonly handler: AgentHandler;
  /** Whether its runs are durable (see {@link AgentOptions.durable}). @default false */
  readonly durable?: boolean;
}

/**
 * Declares an agent.
 * @example
 * const echo = agent({ name: "echo", description: "Echoes its input" },
 *   async function* (input) { for (const message of input) yield message; });
 * @example
 * // A durable agent: its steps run once, even when another instance finishes the run.
 * const pay = agent({ name: "pay", durable: true }, async function* (input, ctx) {
 *   const quote = await ctx.step("quote", (signal) => fetchQuote(input, { signal }));
 *   const answer = yield { type: "message", message: { parts: [{ content: `Pay ${quote.total}?` }] } };
 *   if (answer?.message.parts[0]?.content === "yes") yield await ctx.step("charge", () => charge(quote));
 * });
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
  if (options.durable !== undefined && typeof options.durable !== "boolean")
    throw new TypeError(`[acp] agent(): durable of "${options.name}" must be true or false`);
  return options.durable ? { manifest, handler, durable: true } : { manifest, handler };
}

/**
 * Limits on what one client request or one run may ask of an instance: messages per run input,
 * parts per message, history items and bytes, events per run, a session's size, and how many runs
 * and streams one instance holds at once. Input over a limit is refused before a run exists (422);
 * an instance at capacity answers 503 with `Retry-After`; a run whose agent produces too many
 * events fails.
 */
import { ACPError } from "./errors.ts";
import type { Message } from "./models.ts";

export interface LimitOptions {
  /** Most messages in the input of one run. @default 100 */
  maxInputMessages?: number;
  /** Most parts in one message of a run's input or of a resume. @default 100 */
  maxPartsPerMessage?: number;
  /**
   * Most events the agent's output may produce in one run (parts, messages, generic events; the
   * run's own status events do not count). Past it the run fails with a `server_error`.
   * @default 100_000
   */
  maxEventsPerRun?: number;
  /** Most URLs in the `session.history` of a run request. @default 1_000 */
  maxHistoryItems?: number;
  /**
   * Most bytes of history messages (as JSON) one run loads; items past it are left out, with one
   * line in the log. @default 16_777_216 (16 MiB)
   */
  maxHistoryBytes?: number;
  /**
   * Most history items a session holds: a run in a session that holds this many is refused with
   * 422 (start a new session). A run's own items may take the session past it. @default 10_000
   */
  maxSessionItems?: number;
  /**
   * Most bytes of messages (as JSON) a session holds: a run in a session that holds this many is
   * refused with 422 (start a new session). @default 16_777_216 (16 MiB)
   */
  maxSessionBytes?: number;
  /**
   * Most runs executing on one instance at once (awaiting ones included: their agents are held in
   * memory). Past it, `POST /runs` answers 503 with `Retry-After`. @default 1_000
   */
  maxConcurrentRuns?: number;
  /** Most SSE responses open on one instance at once; past it, a stream request answers 503 with `Retry-After`. @default 10_000 */
  maxStreams?: number;
  /**
   * Longest a run may last, from its start on this instance to its end, awaiting included; past
   * it the run is cancelled (it ends `cancelled`, as if a client had cancelled it).
   * @default undefined (no limit)
   */
  maxRunDurationMs?: number;
  /**
   * Most bytes of the JSON text of one `ctx.step` result of a durable run (it is stored with the
   * run). A larger result makes the step fail with an error saying so (recorded like any step's
   * error, so that a replay fails it the same way). @default 1_048_576 (1 MiB)
   */
  maxStepBytes?: number;
}

/** Every limit, with its default filled in (`maxRunDurationMs` stays off unless set). */
export type Limits = Required<Omit<LimitOptions, "maxRunDurationMs">> & Pick<LimitOptions, "maxRunDurationMs">;

/** The default of every {@link LimitOptions} field. */
export const LIMIT_DEFAULTS: Readonly<Limits> = Object.freeze({
  maxInputMessages: 100,
  maxPartsPerMessage: 100,
  maxEventsPerRun: 100_000,
  maxHistoryItems: 1_000,
  maxHistoryBytes: 16 * 1024 * 1024,
  maxSessionItems: 10_000,
  maxSessionBytes: 16 * 1024 * 1024,
  maxConcurrentRuns: 1_000,
  maxStreams: 10_000,
  maxStepBytes: 1024 * 1024,
});

/**
 * Fills in the defaults and checks the values, so that a wrong option fails when the app is built.
 * @param who names the caller in errors (`createApp()`, `new Runtime()`).
 * @throws TypeError when a limit is not a whole number of at least 1
 */
export function resolveLimits(options: LimitOptions = {}, who = "createApp()"): Limits {
  const limits: Limits = { ...LIMIT_DEFAULTS };
  for (const name of Object.keys(LIMIT_DEFAULTS) as (keyof Limits)[]) {
    const value = options?.[name];
    if (value !== undefined) limits[name] = value;
  }
  if (options?.maxRunDurationMs !== undefined) limits.maxRunDurationMs = options.maxRunDurationMs;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1)
      throw new TypeError(`[acp] ${who}: limits.${name} must be a whole number of at least 1, got ${value}`);
  }
  return limits;
}

function tooMany(message: string, limit: keyof Limits, max: number, actual: number): ACPError {
  return new ACPError({ code: "invalid_input", message, data: { limit, max, actual }, status: 422 });
}

/** Seconds a client is told to wait (`Retry-After`) when an instance is at capacity. */
export const RETRY_AFTER_SECONDS = 1;

/** The 503 of an instance at capacity; the HTTP layer adds `Retry-After`. */
export function atCapacity(limit: "maxConcurrentRuns" | "maxStreams", max: number): ACPError {
  const what = limit === "maxConcurrentRuns" ? "runs" : "streams";
  return new ACPError({
    code: "server_error",
    message: `This instance holds ${max} ${what} already, its limit (${limit}); retry shortly`,
    status: 503,
  });
}

/**
 * Refuses a run in a session that is full, before the run exists.
 * @param session the session's item count and bytes (from {@link Store.getSession}).
 */
export function checkSessionRoom(
  sessionId: string,
  session: { itemIds: readonly string[]; bytes: number },
  limits: Limits,
): void {
  const items = session.itemIds.length;
  const full = (limit: "maxSessionItems" | "maxSessionBytes", what: string, actual: number): ACPError =>
    tooMany(
      `Session ${sessionId} holds ${what}, its limit (${limit}): start a new session`,
      limit,
      limits[limit],
      actual,
    );
  if (items >= limits.maxSessionItems) throw full("maxSessionItems", `${items} history items`, items);
  if (session.bytes >= limits.maxSessionBytes)
    throw full("maxSessionBytes", `${session.bytes} bytes of history`, session.bytes);
}

/**
 * Checks the lengths of a run or resume request's arrays (input, each message's parts,
 * session.history, the resume's parts)
 * on the parsed JSON, before the schema looks at a single item: refusing 400,000 tiny messages
 * then costs a length check, not their validation.
 */
export function checkRequestLengths(body: Record<string, unknown>, limits: Limits): void {
  const { input, session } = body;
  if (Array.isArray(input)) {
    if (input.length > limits.maxInputMessages) throw inputTooLong(input.length, limits);
    for (const [index, message] of input.entries()) {
      const parts = (message as { parts?: unknown } | null)?.parts;
      if (Array.isArray(parts)) checkPartCount(parts.length, limits, `input[${index}]`);
    }
  }
  const history = (session as { history?: unknown } | null)?.history;
  if (Array.isArray(history)) checkHistoryLength(history.length, limits);
  const resumed = (body.await_resume as { message?: { parts?: unknown } } | null)?.message?.parts;
  if (Array.isArray(resumed)) checkPartCount(resumed.length, limits, "await_resume.message");
}

/** Refuses a `session.history` with more URLs than allowed. */
export function checkHistoryLength(items: number, limits: Limits): void {
  if (items > limits.maxHistoryItems) {
    throw tooMany(
      `The session history has ${items} items, more than the limit of ${limits.maxHistoryItems} (maxHistoryItems)`,
      "maxHistoryItems",
      limits.maxHistoryItems,
      items,
    );
  }
}

function inputTooLong(messages: number, limits: Limits): ACPError {
  return tooMany(
    `The input has ${messages} messages, more than the limit of ${limits.maxInputMessages} messages per run (maxInputMessages)`,
    "maxInputMessages",
    limits.maxInputMessages,
    messages,
  );
}

function checkPartCount(parts: number, limits: Limits, where: string): void {
  if (parts > limits.maxPartsPerMessage) {
    throw tooMany(
      `${where} has ${parts} parts, more than the limit of ${limits.maxPartsPerMessage} parts per message (maxPartsPerMessage)`,
      "maxPartsPerMessage",
      limits.maxPartsPerMessage,
      parts,
    );
  }
}

/** Refuses a message with more parts than allowed; `where` names it in the error (`input[3]`). */
export function checkMessageParts(message: Message, limits: Limits, where: string): void {
  checkPartCount(message.parts.length, limits, where);
}

/** Refuses a run input with too many messages, or a message in it with too many parts. */
export function checkRunInput(input: readonly Message[], limits: Limits): void {
  if (input.length > limits.maxInputMessages) throw inputTooLong(input.length, limits);
  for (const [index, message] of input.entries()) checkMessageParts(message, limits, `input[${index}]`);
}

/** The error of a durable run's step whose result is larger than allowed. */
export function stepTooLargeError(name: string, bytes: number, maxStepBytes: number): Error {
  return new Error(
    `The result of step "${name}" is ${bytes} bytes of JSON, more than the limit of ${maxStepBytes} bytes (maxStepBytes)`,
  );
}

/** The error a run fails with when its agent produced more events than allowed. */
export function eventLimitError(maxEventsPerRun: number): ACPError {
  return new ACPError({ code: "server_error", message: `The run exceeded the limit of ${maxEventsPerRun} events` });
}

/**
 * Limits on what one client request or one run may ask of an instance: messages per run input,
 * parts per message and events per run. Input over a limit is refused before a run exists; a run
 * whose agent produces too many events fails.
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
}

/** Every limit, with its default filled in. */
export type Limits = Required<LimitOptions>;

/** The default of every {@link LimitOptions} field. */
export const LIMIT_DEFAULTS: Readonly<Limits> = Object.freeze({
  maxInputMessages: 100,
  maxPartsPerMessage: 100,
  maxEventsPerRun: 100_000,
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
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1)
      throw new TypeError(`[acp] ${who}: limits.${name} must be a whole number of at least 1, got ${value}`);
  }
  return limits;
}

function tooMany(message: string, limit: keyof Limits, max: number, actual: number): ACPError {
  return new ACPError({ code: "invalid_input", message, data: { limit, max, actual }, status: 422 });
}

/** Refuses a message with more parts than allowed; `where` names it in the error (`input[3]`). */
export function checkMessageParts(message: Message, limits: Limits, where: string): void {
  const parts = message.parts.length;
  if (parts > limits.maxPartsPerMessage) {
    throw tooMany(
      `${where} has ${parts} parts, more than the limit of ${limits.maxPartsPerMessage} parts per message (maxPartsPerMessage)`,
      "maxPartsPerMessage",
      limits.maxPartsPerMessage,
      parts,
    );
  }
}

/** Refuses a run input with too many messages, or a message in it with too many parts. */
export function checkRunInput(input: readonly Message[], limits: Limits): void {
  if (input.length > limits.maxInputMessages) {
    throw tooMany(
      `The input has ${input.length} messages, more than the limit of ${limits.maxInputMessages} messages per run (maxInputMessages)`,
      "maxInputMessages",
      limits.maxInputMessages,
      input.length,
    );
  }
  for (const [index, message] of input.entries()) checkMessageParts(message, limits, `input[${index}]`);
}

/** The error a run fails with when its agent produced more events than allowed. */
export function eventLimitError(maxEventsPerRun: number): ACPError {
  return new ACPError({ code: "server_error", message: `The run exceeded the limit of ${maxEventsPerRun} events` });
}

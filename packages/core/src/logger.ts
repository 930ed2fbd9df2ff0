/**
 * The logger the server writes through: a small interface that a pino logger satisfies as is, and
 * a console logger used when none is given.
 */
import { isSpanContextValid, trace } from "@opentelemetry/api";
import type { Run } from "./models.ts";

/**
 * One log method: pino's shape. `fields` holds the structured facts of the line (`run_id`,
 * `session_id`, `agent`, `instance_id`, `trace_id`, and an error under `err`); `msg` is the
 * human sentence.
 */
export type LogMethod = (fields: object, msg?: string) => void;

/**
 * Where the server's log lines go. A pino logger fits (`createApp(agents, { store, logger: pino() })`);
 * so does any object with these four methods.
 */
export interface Logger {
  /** Something failed: a run, a request, a store call. */
  error: LogMethod;
  /** Something was cut short or refused, and the server carries on. */
  warn: LogMethod;
  /** Start-up, shutdown, and a store that answers again. */
  info: LogMethod;
  /** Detail an operator asks for when chasing a problem. */
  debug: LogMethod;
  /** A logger that adds `bindings` to every line (pino's `child`); optional. */
  child?(bindings: object): Logger;
}

/** The fields of a line about a run; `trace_id`, `span_id` and `trace_flags` when a trace is active. */
export interface RunLogFields {
  run_id: string;
  session_id?: string;
  agent: string;
  instance_id?: string;
  trace_id?: string;
  span_id?: string;
  /** `01` when the trace is recorded, `00` when the sampler dropped it (the backend will not have it). */
  trace_flags?: string;
}

/**
 * The fields of a line about `run`, run by the instance `instanceId`, with the active trace (read
 * through `@opentelemetry/api`: no trace without an OpenTelemetry SDK). Built when a line is
 * written, never ahead of it, so that a run that logs nothing pays nothing.
 */
export function runFields(
  run: Pick<Run, "run_id" | "session_id" | "agent_name">,
  instanceId: string | undefined,
): RunLogFields {
  const fields: RunLogFields = { run_id: run.run_id, session_id: run.session_id, agent: run.agent_name };
  if (instanceId !== undefined) fields.instance_id = instanceId;
  const span = trace.getActiveSpan()?.spanContext();
  // An invalid context (all zeros) is what the API hands out when no SDK records anything.
  if (span !== undefined && isSpanContextValid(span)) {
    fields.trace_id = span.traceId;
    fields.span_id = span.spanId;
    fields.trace_flags = (span.traceFlags & 0xff).toString(16).padStart(2, "0");
  }
  return fields;
}

/** Renders a field value: plain when it reads unambiguously, JSON otherwise. */
function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The console logger's line for one call: `[acp] <msg> key=value …`, and the error (if any) apart. */
function consoleLine(bindings: object, fields: object, msg: string | undefined): unknown[] {
  let line = msg ? `[acp] ${msg}` : "[acp]";
  let error: unknown;
  for (const [key, value] of Object.entries({ ...bindings, ...fields })) {
    if (value === undefined) continue;
    // The error goes to the console as an object of its own, so its stack and cause print.
    if (key === "err") error = value;
    else line += ` ${key}=${formatValue(value)}`;
  }
  return error === undefined ? [line] : [line, error];
}

/** A console logger that adds `bindings` to each line. */
function createConsoleLogger(bindings: object): Logger {
  return {
    error(fields, msg) {
      console.error(...consoleLine(bindings, fields, msg));
    },
    warn(fields, msg) {
      console.warn(...consoleLine(bindings, fields, msg));
    },
    info(fields, msg) {
      console.log(...consoleLine(bindings, fields, msg));
    },
    // Debug lines are for a logger with levels (pino); the default console stays quiet.
    debug() {},
    child(more) {
      return createConsoleLogger({ ...bindings, ...more });
    },
  };
}

/**
 * The default logger: one human-readable line per call on the console (`console.error` for
 * errors, `console.warn` for warnings, `console.log` for information; debug lines are dropped),
 * e.g. `[acp] run failed run_id=… agent=echo` followed by the error and its stack.
 */
export const consoleLogger: Logger = createConsoleLogger({});

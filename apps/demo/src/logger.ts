/**
 * The demo's logger: pino, one JSON object a line when stdout is not a terminal (for a log
 * collector), readable lines on a terminal; the level from `ACP_LOG_LEVEL` (docs/configuration.md).
 */
import { format } from "node:util";
import { type DestinationStream, type Level, type Logger as PinoLogger, pino } from "pino";

type Env = Record<string, string | undefined>;

/** What `ACP_LOG_LEVEL` may say, quietest last. */
const LEVELS: readonly (Level | "silent")[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** The level from `ACP_LOG_LEVEL`; `info` when it is not set. */
export function logLevelFromEnv(env: Env = process.env): Level | "silent" {
  const raw = env.ACP_LOG_LEVEL?.trim().toLowerCase();
  if (raw === undefined || raw === "") return "info";
  const level = LEVELS.find((candidate) => candidate === raw);
  if (level === undefined)
    throw new Error(`ACP_LOG_LEVEL must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(env.ACP_LOG_LEVEL)}`);
  return level;
}

/** Fields every line has, left out of a readable line's `key=value` list. */
const FRAME = new Set(["level", "time", "msg", "pid", "hostname", "err"]);

/** A field value in a readable line: bare when that reads unambiguously. */
function readable(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One JSON line of pino as a line for a person: `12:00:00.000 ERROR the run failed run_id=… agent=…`,
 * then the error's stack, if the line has one.
 */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === "string" ? entry.time.slice(11, 23) : "";
  let line = `${time} ${String(entry.level).toUpperCase().padEnd(5)} ${entry.msg ?? ""}`;
  for (const [key, value] of Object.entries(entry)) if (!FRAME.has(key)) line += ` ${key}=${readable(value)}`;
  const err = entry.err as { stack?: string; message?: string } | undefined;
  if (err !== undefined) line += `\n  ${(err.stack ?? err.message ?? format(err)).replaceAll("\n", "\n  ")}`;
  return `${line}\n`;
}

/** A pino destination that writes each line readable to `out` (a terminal). */
function prettyTo(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(json: string) {
      out.write(prettyLine(json));
    },
  };
}

/**
 * The demo's logger, writing to `out` (stdout): JSON lines unless `out` is a terminal. Levels are
 * named (`"level":"error"`), times ISO 8601, and an error goes under `err` with its stack.
 * @throws Error when `ACP_LOG_LEVEL` is not a level.
 */
export function createLogger(
  env: Env = process.env,
  out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout,
): PinoLogger {
  const options = {
    level: logLevelFromEnv(env),
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const tty = "isTTY" in out && out.isTTY === true;
  if (tty) return pino(options, prettyTo(out));
  // On stdout, synchronous writes: a buffered writer can lose the last lines ("stopped cleanly")
  // when the process exits right after them. Any other stream as given.
  return out === process.stdout
    ? pino(options, pino.destination({ dest: 1, sync: true }))
    : pino(options, out as DestinationStream);
}

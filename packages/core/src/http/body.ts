/**
 * Request bodies: the size limit (413 without reading a body whole), reading a body as a JSON
 * object that every store can hold, and reading what no handler read so the connection stays usable.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { invalidInput } from "../errors.ts";
import { requestHeader } from "./request-header.ts";

/** Deepest nesting of arrays and objects a body may have: deeper values overflow the stack of the stores that copy or serialise them. */
export const MAX_JSON_DEPTH = 64;

/** NUL and unpaired surrogates: JSON allows them in strings, PostgreSQL's jsonb refuses them, and UTF-8 cannot carry the latter. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what this looks for.
const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The escapes through which JSON text can put NUL or a surrogate in a string (`\u0000`,
 * `\uD800`…`\uDFFF`). Text decoded from UTF-8 holds no surrogate of its own, and JSON allows no
 * raw NUL in a string: without one of these escapes, no string of the parsed value is unstorable.
 */
const UNSTORABLE_ESCAPE = /\\u(?:0000|[dD][89a-fA-F])/;

/**
 * Whether the value parsed from `text` may be unstorable, judged from the text alone: it holds
 * an escape that may make a string unstorable, or more than `levels` opening brackets (fewer
 * cannot nest deeper). A body for which this says no needs no walk over its values.
 */
export function mayBeUnstorable(text: string, levels: number): boolean {
  if (UNSTORABLE_ESCAPE.test(text)) return true;
  let opened = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    // '{' or '['
    if ((code === 123 || code === 91) && ++opened > levels) return true;
  }
  return false;
}

/**
 * Why a parsed body cannot be stored by every store, or `undefined`: nesting deeper than `levels`,
 * or a string or key with NUL or an unpaired surrogate. Stops descending at the depth limit, so
 * it cannot overflow itself.
 */
export function unstorable(value: unknown, levels: number, path: string[] = []): string | undefined {
  // The path is joined only for the message: keys may be long.
  const at = (): string => (path.length === 0 ? "the body" : path.join(".").slice(0, 200));
  if (typeof value === "string") {
    return UNSTORABLE_TEXT.test(value)
      ? `Text at ${at()} holds NUL or an unpaired surrogate: send binary data base64-encoded`
      : undefined;
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
 * not read: `"close"` says that the answer must close its connection instead.
 */
export function finishUnreadBody(c: Context, maxBodyBytes: number): "close" | undefined {
  const request = c.req.raw;
  const length = requestHeader(c, "content-length");
  const chunked = requestHeader(c, "transfer-encoding") !== undefined;
  // `bodyUsed` and the headers first: touching `request.body` makes Node's adapter build a full
  // Request for every request, a large part of a request's cost.
  if (request.bodyUsed || (length === undefined && !chunked) || length === "0" || request.body === null) return;
  if (!chunked && Number(length) <= maxBodyBytes) void request.arrayBuffer().catch(() => undefined);
  else return "close";
}

/**
 * The 413 answer for a body whose declared length is over the limit, from the header alone (hono's
 * bodyLimit looks at `request.body` first, which costs every request a full Request object on
 * Node); `"chunked"` for a body without a declared length, which {@link countBody} must count as
 * it streams in; `undefined` for a body within the limit.
 */
export function bodyOverLimit(c: Context, maxBodyBytes: number): Response | "chunked" | undefined {
  if (requestHeader(c, "transfer-encoding") !== undefined) return "chunked";
  const length = requestHeader(c, "content-length");
  return length !== undefined && Number(length) > maxBodyBytes ? tooLarge(c, maxBodyBytes) : undefined;
}

/** The middleware that counts a chunked body as it streams in: 413 once it passes the limit. */
export function countBody(maxBodyBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBodyBytes,
    // The rest of the body is never read, so the connection cannot carry another request.
    onError: (c) => tooLarge(c, maxBodyBytes),
  });
}

/** The 413 answer; the connection closes, as the rest of the body is never read. */
function tooLarge(c: Context, maxBodyBytes: number): Response {
  return c.json({ code: "invalid_input", message: `The request body is larger than ${maxBodyBytes} bytes` }, 413, {
    connection: "close",
  });
}

/**
 * The request body as a JSON object; every ACP request body is one.
 * @param precheck looks at the parsed object before the walk over all its values (array
 *   lengths, say), so that a body refused for its shape costs no more than its parse.
 */
export async function readJson(
  c: Context,
  precheck?: (body: Record<string, unknown>) => void,
): Promise<Record<string, unknown>> {
  // No Content-Type is taken as JSON; any other type is refused rather than guessed at.
  const type = requestHeader(c, "content-type");
  if (type !== undefined && !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) {
    throw invalidInput(
      `Content-Type must be application/json, not ${type.replace(/;.*$/s, "").trim().slice(0, 100)}`,
      415,
    );
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
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw invalidInput("The request body must be a JSON object");
  precheck?.(body as Record<string, unknown>);
  // The walk over every value only when the text says it may find something.
  const problem = mayBeUnstorable(text, MAX_JSON_DEPTH) ? unstorable(body, MAX_JSON_DEPTH) : undefined;
  if (problem !== undefined) throw invalidInput(problem);
  return body as Record<string, unknown>;
}

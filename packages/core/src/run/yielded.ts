/**
 * Classifies what a handler yields and turns it into validated ACP values, so that a bad yield
 * fails the run with a clear error instead of putting an invalid event on the wire.
 */
import * as v from "valibot";
import type { Yielded } from "../agent.ts";
import { ACPError } from "../errors.ts";
import { type Message, type MessagePart, MessagePartSchema, MessageSchema } from "../models.ts";

export type Classified =
  | { kind: "part"; part: MessagePart }
  | { kind: "message"; message: Message }
  | { kind: "await"; message: Message }
  | { kind: "generic"; generic: Record<string, unknown> }
  | { kind: "nothing" };

const PART_KEYS = ["content", "content_url", "content_type", "content_encoding"];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function parseOrFail<T>(schema: v.GenericSchema<unknown, T>, value: unknown, what: string): T {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const path = issue.path?.map((item) => item.key).join(".");
  throw new ACPError({
    code: "server_error",
    message: `The agent yielded an invalid ${what}: ${path ? `${path}: ` : ""}${issue.message}`,
  });
}

/**
 * NUL and unpaired surrogates: JSON strings may hold them, but PostgreSQL's jsonb refuses the
 * first and UTF-8 cannot carry the second. Output holding them would be refused by the store and
 * fail its run, so they become U+FFFD (the replacement character) when yielded.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what this looks for.
const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: as above.
const UNSTORABLE_TEXT_ALL = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` with what no store can hold replaced by U+FFFD; the same string (no copy) when it holds none. */
export function storableText(text: string): string {
  return UNSTORABLE_TEXT.test(text) ? text.replace(UNSTORABLE_TEXT_ALL, "\ufffd") : text;
}

/**
 * `value` with every string and key made storable ({@link storableText}). Plain objects and
 * arrays are copied only along the path to a string that changed; the rest is returned as it is.
 */
export function storable<T>(value: T): T {
  if (typeof value === "string") return storableText(value) as T;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const clean = storable(item);
      if (clean === item) continue;
      copy ??= value.slice();
      copy[i] = clean;
    }
    return (copy ?? value) as T;
  }
  if (!isPlainObject(value)) return value;
  let copy: Record<string, unknown> | undefined;
  // for…in rather than Object.entries: no array of pairs per object.
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const item = value[key];
    const cleanKey = storableText(key);
    const clean = storable(item);
    if (clean === item && cleanKey === key) continue;
    if (copy === undefined) copy = { ...value };
    if (cleanKey !== key) delete copy[key];
    // Defined, not assigned: a key named __proto__ stays a key.
    Object.defineProperty(copy, cleanKey, { value: clean, enumerable: true, writable: true, configurable: true });
  }
  return (copy ?? value) as T;
}

/** `role` is the role an agent message gets when the handler leaves it out: `agent/<name>`. */
export function classify(yielded: Yielded, role: string): Classified {
  // The common case, a token: one test of its text.
  if (typeof yielded === "string") {
    const content = storableText(yielded);
    return { kind: "part", part: { content_type: "text/plain", content, content_encoding: "plain" } };
  }
  const classified = classifyAsIs(yielded, role);
  switch (classified.kind) {
    case "part":
      return { kind: "part", part: storable(classified.part) };
    case "message":
    case "await":
      return { kind: classified.kind, message: storable(classified.message) };
    case "generic":
      return { kind: "generic", generic: storable(classified.generic) };
    case "nothing":
      return classified;
  }
}

function classifyAsIs(yielded: Yielded, role: string): Classified {
  const value: unknown = yielded;
  if (value === null || value === undefined) return { kind: "nothing" };
  if (typeof value === "string")
    return { kind: "part", part: { content_type: "text/plain", content: value, content_encoding: "plain" } };
  if (!isPlainObject(value)) {
    throw new ACPError({
      code: "server_error",
      message: `The agent yielded a ${typeof value}, which is not a string, part, message or object`,
    });
  }
  if (value.type === "message" && isPlainObject(value.message)) {
    return { kind: "await", message: parseOrFail(MessageSchema, { role, ...value.message }, "await request") };
  }
  if (Array.isArray(value.parts)) {
    // Output belongs to the agent: a yielded input message (role "user") becomes the agent's.
    const own = typeof value.role === "string" && value.role.startsWith("agent") ? value.role : role;
    const { created_at: _c, completed_at: _d, ...rest } = value;
    return { kind: "message", message: parseOrFail(MessageSchema, { ...rest, role: own }, "message") };
  }
  if (PART_KEYS.some((key) => key in value))
    return { kind: "part", part: parseOrFail(MessagePartSchema, value, "message part") };
  return { kind: "generic", generic: value };
}

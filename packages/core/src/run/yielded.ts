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

/** `role` is the role an agent message gets when the handler leaves it out: `agent/<name>`. */
export function classify(yielded: Yielded, role: string): Classified {
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

/**
 * fast-check arbitraries for ACP requests: valid run and resume bodies, mutations of them (fields
 * dropped, added, of the wrong type, null, huge or odd strings, deep nesting, arrays for objects),
 * random JSON and text that is not JSON, and odd path segments and query strings.
 *
 * Valid bodies only ever start the `echo` and `tokens` agents, with inputs that keep them short,
 * so that no request leaves a run going or waiting.
 */
import fc from "fast-check";

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit));

/** One character: any code point, a lone surrogate, or one of those that break naive parsers. */
const oddChar = fc.oneof(
  { arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), weight: 6 },
  { arbitrary: loneSurrogate, weight: 1 },
  {
    arbitrary: fc.constantFrom("\u0000", "\u2028", "\ufeff", "\uffff", '"', "\\", "%", "/", "\n", "\r", "<"),
    weight: 2,
  },
);

/** Up to 100,000 repetitions of one character, rarely: enough to hurt, not enough to fill memory over thousands of runs. */
const hugeString = fc
  .tuple(fc.constantFrom("x", "é", "\u{1f600}", "\u0000", "\ud800"), fc.integer({ min: 1_000, max: 100_000 }))
  .map(([char, count]) => char.repeat(count));

export const oddString = fc.oneof(
  { arbitrary: fc.string({ maxLength: 16 }), weight: 8 },
  { arbitrary: fc.string({ unit: oddChar, maxLength: 32 }), weight: 8 },
  { arbitrary: hugeString, weight: 1 },
);

/** Arrays or objects nested `depth` levels deep. */
function nested(depth: number, kind: "array" | "object"): unknown {
  let value: unknown = kind === "array" ? [] : {};
  for (let level = 1; level < depth; level++) value = kind === "array" ? [value] : { a: value };
  return value;
}

/** A value of any JSON type, including the odd ones: the replacement in a mutation. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  oddString,
  fc.constant(null),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constantFrom({}, [], "", 0, -1, "null", "true", "[]", "{}"),
  fc.jsonValue({ maxDepth: 3 }),
  fc
    .tuple(fc.integer({ min: 2, max: 300 }), fc.constantFrom("array" as const, "object" as const))
    .map(([depth, kind]) => nested(depth, kind)),
);

const base64 = fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes).toString("base64"));

const textPart = fc.record(
  {
    content: oddString,
    content_type: fc.constantFrom("text/plain", "text/markdown", "application/json", "application/octet-stream"),
    name: fc.string({ maxLength: 12 }),
  },
  { requiredKeys: ["content"] },
);
const base64Part = fc.record({
  content: base64,
  content_encoding: fc.constant("base64"),
  content_type: fc.constantFrom("image/png", "application/octet-stream"),
});
const urlPart = fc.record({ content_url: fc.webUrl(), content_type: fc.constant("application/pdf") });
const metadataPart = fc.record({
  content: fc.string({ maxLength: 16 }),
  metadata: fc.oneof(
    fc.record(
      {
        kind: fc.constant("citation"),
        url: fc.webUrl(),
        start_index: fc.nat(100),
        end_index: fc.nat(100),
        title: oddString,
      },
      { requiredKeys: ["kind"] },
    ),
    fc.record(
      {
        kind: fc.constant("trajectory"),
        message: oddString,
        tool_name: fc.string({ maxLength: 12 }),
        tool_input: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }),
      },
      { requiredKeys: ["kind"] },
    ),
  ),
});
const part = fc.oneof({ arbitrary: textPart, weight: 6 }, base64Part, urlPart, metadataPart);

export const message = fc.record(
  {
    role: fc.constantFrom("user", "agent", "agent/helper", null),
    parts: fc.array(part, { minLength: 1, maxLength: 3 }),
    created_at: fc
      .date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
      .map((date) => date.toISOString()),
  },
  { requiredKeys: ["parts"] },
);

export const mode = fc.constantFrom("sync", "async", "stream", null, undefined);

/** A valid `RunCreateRequest` for the echo agent. */
export const echoRunBody = fc
  .record(
    {
      agent_name: fc.constant("echo"),
      input: fc.array(message, { minLength: 1, maxLength: 3 }),
      mode,
      session_id: fc.uuid(),
      session: fc.uuid().map((id) => ({ id, history: [] })),
    },
    { requiredKeys: ["agent_name", "input"] },
  )
  .map((body) => {
    // Both given, they must name one session.
    return body.session && body.session_id ? { ...body, session: { ...body.session, id: body.session_id } } : body;
  });

/** A valid `RunCreateRequest` for the tokens agent, with words that never ask for repetitions or delays. */
export const tokensRunBody = fc.record({
  agent_name: fc.constant("tokens"),
  input: fc
    .array(fc.constantFrom("alpha", "beta", "γάμμα", "\u{1f600}", "x\u2028y"), { maxLength: 8 })
    .map((words) => [{ role: "user", parts: [{ content: words.join(" ") }] }]),
  mode,
});

/** A valid `RunResumeRequest`. */
export const resumeBody = fc.record(
  { await_resume: fc.record({ type: fc.constant("message"), message }), mode },
  { requiredKeys: ["await_resume"] },
);

/** One change to a JSON value: at the container picked by `at`, drop a key, add one, replace a value or wrap it in an array. */
interface Mutation {
  at: number;
  op: "drop" | "add" | "replace" | "wrap" | "replace-root";
  key: string;
  value: unknown;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("drop", "add", "replace", "replace", "replace", "wrap", "replace-root"),
  key: fc.oneof(
    fc.constantFrom(
      "agent_name",
      "input",
      "mode",
      "parts",
      "content",
      "role",
      "await_resume",
      "type",
      "message",
      "__proto__",
    ),
    fc.string({ maxLength: 8 }),
  ),
  value: anyValue,
});

function containersOf(
  value: unknown,
  found: (Record<string, unknown> | unknown[])[] = [],
): (Record<string, unknown> | unknown[])[] {
  if (typeof value !== "object" || value === null) return found;
  found.push(value as Record<string, unknown> | unknown[]);
  for (const item of Object.values(value)) containersOf(item, found);
  return found;
}

function applyMutation(body: unknown, { at, op, key, value: generated }: Mutation): unknown {
  // A copy: constants such as {} and [] are one object shared by every run, and later mutations
  // change the body in place (they would change the constant, or put it inside itself).
  const value = structuredClone(generated);
  if (op === "replace-root") return value;
  const containers = containersOf(body);
  if (containers.length === 0) return body;
  const target = containers[at % containers.length]!;
  const keys = Object.keys(target);
  const existing = keys.length > 0 ? keys[at % keys.length]! : key;
  const slot = target as Record<string, unknown>;
  if (op === "drop") delete slot[existing];
  else if (op === "add")
    Object.defineProperty(slot, key, { value, enumerable: true, writable: true, configurable: true });
  else if (op === "replace") slot[existing] = value;
  else slot[existing] = [slot[existing]];
  return body;
}

/** Agents a mutation must not start: they run long or wait for a resume. */
const longAgents = new Set([
  "slow",
  "approval",
  "tokens",
  "chat",
  "artifacts",
  "failing",
  "durable-steps",
  "durable-approval",
]);

/** A valid body changed by one to three mutations; it may happen to stay valid. */
export function mutated(valid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([body, mutations]) => {
    let result: unknown = structuredClone(body);
    for (const change of mutations) result = applyMutation(result, change);
    const agentName = (result as { agent_name?: unknown } | null)?.agent_name;
    if (typeof agentName === "string" && longAgents.has(agentName))
      (result as { agent_name: string }).agent_name = "echo";
    return result;
  });
}

/** A request body as sent: text (JSON or not) or raw bytes, possibly not UTF-8. */
export type RawBody = { text: string } | { bytes: Uint8Array<ArrayBuffer> };

/** Bodies that are not built from a valid one: random JSON, random text, random bytes. */
export const randomBody: fc.Arbitrary<RawBody> = fc.oneof(
  fc.json({ maxDepth: 4 }).map((text) => ({ text })),
  fc.dictionary(oddString, anyValue, { maxKeys: 5 }).map((value) => ({ text: JSON.stringify(value) })),
  fc.string({ unit: oddChar, maxLength: 64 }).map((text) => ({ text })),
  fc
    .constantFrom(
      "",
      " ",
      "{",
      "}",
      "[",
      "null",
      "nul",
      '{"a":1}{',
      "\ufeff{}",
      "{}garbage",
      '{"agent_name":"echo","input":[',
      "1e999",
    )
    .map((text) => ({ text })),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ bytes })),
);

/** Content-Type headers, mostly JSON; `undefined` sends none. */
export const contentType = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 12 },
  {
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "application/vnd.acp+json",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/jsonx",
      "",
      undefined,
    ),
    weight: 3,
  },
);

/** `text` with each lone surrogate replaced by U+FFFD, so that it can be percent-encoded. */
function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** A path segment: a URL-safe one, an encoded odd string, or one that percent-decoding trips on. */
export const oddSegment = fc.oneof(
  fc.webSegment(),
  oddString.filter((text) => text.length < 200).map((text) => encodeURIComponent(wellFormed(text))),
  fc.constantFrom(
    "%",
    "%zz",
    "%00",
    "%ff",
    "%2F",
    "a%2Fb",
    "..",
    ".",
    "-",
    "00000000-0000-0000-0000-000000000000",
    "%E0%A4%A",
  ),
);

/** A query string: `limit` and `offset` with good and bad values, and unknown keys. */
export const queryString = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom("limit", "offset"), fc.string({ maxLength: 8 })),
      fc.oneof(
        fc.nat(2000).map(String),
        fc.constantFrom("-1", "1.5", "1e3", "0x10", "", "NaN", "Infinity", " 5 "),
        oddString.filter((text) => text.length < 200),
      ),
    ),
    { maxLength: 3 },
  )
  .map((pairs) => new URLSearchParams(pairs.map(([key, value]) => [wellFormed(key), wellFormed(value)])).toString());

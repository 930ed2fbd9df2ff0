/**
 * Bad input through `app.request()`: each case gets the right 4xx and an ACP error body
 * `{ code, message }` that names the problem, and the app stays healthy afterwards.
 *
 * The same cases, with what the app answered, make the table in docs/bad-input.md: run with
 * `UPDATE_DOCS=1` to write it; otherwise the test fails when the committed table is stale.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgents } from "./support/agents.ts";
import { startApp, type TestApp } from "./support/app.ts";
import { type Answer, badInputDocsPath, checkOrWriteDocs, renderBadInputDocs } from "./support/bad-input-docs.ts";
import { assertMatchesSchema } from "./support/openapi.ts";

let served: TestApp;
/** Runs in each state a case needs, by the placeholder that stands for them in case paths. */
const runs: Record<string, string> = {};

beforeAll(async () => {
  served = await startApp(testAgents);
  runs["{finished-run}"] = await startRun({ agent_name: "echo", input: [user("hi")] }, "completed");
  runs["{running-run}"] = await startRun({ agent_name: "slow", input: [user("ticks=600")], mode: "async" }, "created");
  // Sync mode answers as soon as the run awaits.
  runs["{awaiting-run}"] = await startRun({ agent_name: "approval", input: [user("the plan")] }, "awaiting");
});

afterAll(async () => {
  for (const placeholder of ["{running-run}", "{awaiting-run}"]) {
    if (runs[placeholder]) await served.request(`/runs/${runs[placeholder]}/cancel`, { method: "POST" });
  }
  await served?.stop(500);
});

async function startRun(body: unknown, status: string): Promise<string> {
  const response = await served.request("/runs", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const run = (await response.json()) as { run_id: string; status: string };
  expect(run.status).toBe(status);
  return run.run_id;
}

const user = (content: string) => ({ role: "user", parts: [{ content }] });
const resume = { await_resume: { type: "message", message: user("yes") }, mode: "sync" };
const run = (fields: Record<string, unknown>) => ({ agent_name: "echo", input: [user("hi")], ...fields });
const part = (fields: Record<string, unknown>) => ({ agent_name: "echo", input: [{ role: "user", parts: [fields] }] });

/** One bad request and the answer it must get. */
export interface BadInputCase {
  /** What is wrong with the request. */
  input: string;
  method: "GET" | "POST";
  /**
   * The path; `{finished-run}`, `{running-run}` and `{awaiting-run}` stand for the ids of runs in
   * those states, `{random-uuid}` for a fresh UUID that no run, session or resource has.
   */
  path: string;
  /** Sent as JSON with `Content-Type: application/json`. */
  body?: unknown;
  /** Sent as is instead of `body`, with `Content-Type: application/json` unless `headers` say otherwise. */
  raw?: string;
  headers?: Record<string, string>;
  status: number;
  code: "invalid_input" | "not_found" | "server_error";
  /** A piece of the message that names the problem. */
  says: string;
}

const nonUuid = "not-a-uuid";

export const badInputCases: BadInputCase[] = [
  // Request bodies that are not what ACP expects at all.
  {
    input: "malformed JSON",
    method: "POST",
    path: "/runs",
    raw: '{"agent_name": "echo", ',
    status: 400,
    code: "invalid_input",
    says: "not valid JSON",
  },
  { input: "an empty body", method: "POST", path: "/runs", raw: "", status: 400, code: "invalid_input", says: "empty" },
  {
    input: "a body of spaces",
    method: "POST",
    path: "/runs",
    raw: "   \n",
    status: 400,
    code: "invalid_input",
    says: "empty",
  },
  {
    input: "a body that is not an object",
    method: "POST",
    path: "/runs",
    body: [1, 2],
    status: 422,
    code: "invalid_input",
    says: "JSON object",
  },
  {
    input: "a body that is null",
    method: "POST",
    path: "/runs",
    raw: "null",
    status: 422,
    code: "invalid_input",
    says: "JSON object",
  },
  {
    input: "a wrong Content-Type",
    method: "POST",
    path: "/runs",
    raw: JSON.stringify(run({})),
    headers: { "content-type": "text/plain" },
    status: 415,
    code: "invalid_input",
    says: "Content-Type must be application/json",
  },
  {
    input: "a form instead of JSON",
    method: "POST",
    path: "/runs",
    raw: "agent_name=echo&input=hi",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
    code: "invalid_input",
    says: "Content-Type must be application/json",
  },
  {
    input: "JSON nested deeper than 64 levels",
    method: "POST",
    path: "/runs",
    raw: `{"agent_name":"echo","input":${"[".repeat(100)}${"]".repeat(100)}}`,
    status: 422,
    code: "invalid_input",
    says: "nested deeper than 64 levels",
  },
  {
    input: "a NUL character in text",
    method: "POST",
    path: "/runs",
    body: part({ content: "a\u0000b" }),
    status: 422,
    code: "invalid_input",
    says: "input.0.parts.0.content holds NUL",
  },
  {
    input: "an unpaired surrogate in text",
    method: "POST",
    path: "/runs",
    body: part({ content: "x\ud800" }),
    status: 422,
    code: "invalid_input",
    says: "unpaired surrogate",
  },
  {
    input: "a NUL character in a key",
    method: "POST",
    path: "/runs",
    body: part({ content: "x", metadata: { kind: "trajectory", tool_input: { "a\u0000": 1 } } }),
    status: 422,
    code: "invalid_input",
    says: "A key in input.0.parts.0.metadata.tool_input",
  },

  // POST /runs: fields missing, of the wrong type or out of range.
  {
    input: "missing agent_name",
    method: "POST",
    path: "/runs",
    body: { input: [user("hi")] },
    status: 422,
    code: "invalid_input",
    says: "agent_name is required",
  },
  {
    input: "agent_name of the wrong type",
    method: "POST",
    path: "/runs",
    body: run({ agent_name: 42 }),
    status: 422,
    code: "invalid_input",
    says: "agent_name",
  },
  {
    input: "agent_name that is not a DNS label",
    method: "POST",
    path: "/runs",
    body: run({ agent_name: "Echo Agent" }),
    status: 422,
    code: "invalid_input",
    says: "agent_name",
  },
  {
    input: "missing input",
    method: "POST",
    path: "/runs",
    body: { agent_name: "echo" },
    status: 422,
    code: "invalid_input",
    says: "input is required",
  },
  {
    input: "input of the wrong type",
    method: "POST",
    path: "/runs",
    body: run({ input: "hi" }),
    status: 422,
    code: "invalid_input",
    says: "input",
  },
  {
    input: "an empty input",
    method: "POST",
    path: "/runs",
    body: run({ input: [] }),
    status: 422,
    code: "invalid_input",
    says: "input must not be empty",
  },
  {
    input: "a message that is null",
    method: "POST",
    path: "/runs",
    body: run({ input: [null] }),
    status: 422,
    code: "invalid_input",
    says: "input.0",
  },
  {
    input: "an invalid message role",
    method: "POST",
    path: "/runs",
    body: run({ input: [{ role: "robot", parts: [{ content: "x" }] }] }),
    status: 422,
    code: "invalid_input",
    says: "role",
  },
  {
    // Counted before any message is validated: a huge body of tiny messages costs a length check.
    input: "more input messages than maxInputMessages (100), none of them valid",
    method: "POST",
    path: "/runs",
    body: run({ input: Array(101).fill(0) }),
    status: 422,
    code: "invalid_input",
    says: "maxInputMessages",
  },
  {
    input: "more session history URLs than maxHistoryItems (1,000)",
    method: "POST",
    path: "/runs",
    body: run({ session: { id: "5f0c6a8e-1111-4222-8333-944455556666", history: Array(1001).fill("x") } }),
    status: 422,
    code: "invalid_input",
    says: "maxHistoryItems",
  },
  {
    input: "a message without parts",
    method: "POST",
    path: "/runs",
    body: run({ input: [{ role: "user", parts: [] }] }),
    status: 422,
    code: "invalid_input",
    says: "at least one part",
  },
  {
    input: "a message with parts of the wrong type",
    method: "POST",
    path: "/runs",
    body: run({ input: [{ role: "user", parts: "x" }] }),
    status: 422,
    code: "invalid_input",
    says: "parts must be an array",
  },
  {
    input: "a message that is an array",
    method: "POST",
    path: "/runs",
    body: run({ input: [[user("x")]] }),
    status: 422,
    code: "invalid_input",
    says: "input.0: must be an object, not an array",
  },
  {
    input: "a part that is an array",
    method: "POST",
    path: "/runs",
    body: run({ input: [{ role: "user", parts: [[]] }] }),
    status: 422,
    code: "invalid_input",
    says: "input.0.parts.0: must be an object, not an array",
  },
  {
    input: "part metadata that is an array",
    method: "POST",
    path: "/runs",
    body: part({ content: "x", metadata: [] }),
    status: 422,
    code: "invalid_input",
    says: "metadata: must be an object, not an array",
  },
  {
    input: "a session descriptor that is an array",
    method: "POST",
    path: "/runs",
    body: run({ session: [] }),
    status: 422,
    code: "invalid_input",
    says: "session: must be an object, not an array",
  },
  {
    input: "a part with both content and content_url",
    method: "POST",
    path: "/runs",
    body: part({ content: "x", content_url: "https://example.com/x" }),
    status: 422,
    code: "invalid_input",
    says: "not both",
  },
  {
    input: "an invalid content_url",
    method: "POST",
    path: "/runs",
    body: part({ content_url: "not a url" }),
    status: 422,
    code: "invalid_input",
    says: "content_url must be a URL",
  },
  {
    input: "invalid base64 under content_encoding: base64",
    method: "POST",
    path: "/runs",
    body: part({ content: "not base64!", content_encoding: "base64" }),
    status: 422,
    code: "invalid_input",
    says: "base64",
  },
  {
    input: "an unknown content_encoding",
    method: "POST",
    path: "/runs",
    body: part({ content: "x", content_encoding: "gzip" }),
    status: 422,
    code: "invalid_input",
    says: "content_encoding",
  },
  {
    input: "an invalid created_at",
    method: "POST",
    path: "/runs",
    body: run({ input: [{ ...user("x"), created_at: "yesterday" }] }),
    status: 422,
    code: "invalid_input",
    says: "ISO 8601",
  },
  {
    input: "an unknown mode",
    method: "POST",
    path: "/runs",
    body: run({ mode: "turbo" }),
    status: 422,
    code: "invalid_input",
    says: "mode",
  },
  {
    input: "a non-UUID session_id",
    method: "POST",
    path: "/runs",
    body: run({ session_id: "abc" }),
    status: 422,
    code: "invalid_input",
    says: "session id",
  },
  {
    input: "a non-UUID session.id",
    method: "POST",
    path: "/runs",
    body: run({ session: { id: "abc" } }),
    status: 422,
    code: "invalid_input",
    says: "session.id",
  },
  {
    input: "session_id and session.id that differ",
    method: "POST",
    path: "/runs",
    body: run({
      session_id: "00000000-0000-4000-8000-000000000001",
      session: { id: "00000000-0000-4000-8000-000000000002" },
    }),
    status: 422,
    code: "invalid_input",
    says: "differ",
  },
  {
    input: "an unknown agent",
    method: "POST",
    path: "/runs",
    body: run({ agent_name: "nobody" }),
    status: 404,
    code: "not_found",
    says: "nobody",
  },

  // Agents.
  {
    input: "reading an unknown agent",
    method: "GET",
    path: "/agents/nobody",
    status: 404,
    code: "not_found",
    says: "nobody",
  },
  {
    input: "an agents limit out of range",
    method: "GET",
    path: "/agents?limit=0",
    status: 422,
    code: "invalid_input",
    says: "limit",
  },
  {
    input: "an agents limit that is not a number",
    method: "GET",
    path: "/agents?limit=ten",
    status: 422,
    code: "invalid_input",
    says: "limit must be an integer",
  },
  {
    input: "an agents limit that is not an integer",
    method: "GET",
    path: "/agents?limit=1.5",
    status: 422,
    code: "invalid_input",
    says: "limit must be an integer",
  },
  {
    input: "an agents offset that is not a number",
    method: "GET",
    path: "/agents?offset=abc",
    status: 422,
    code: "invalid_input",
    says: "offset must be an integer",
  },
  {
    input: "a negative agents offset",
    method: "GET",
    path: "/agents?offset=-1",
    status: 422,
    code: "invalid_input",
    says: "offset must be at least 0",
  },

  // Runs: unknown and malformed ids on every route that takes one.
  {
    input: "an unknown run id",
    method: "GET",
    path: "/runs/{random-uuid}",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "a non-UUID run id",
    method: "GET",
    path: `/runs/${nonUuid}`,
    status: 422,
    code: "invalid_input",
    says: "run id must be a UUID",
  },
  {
    input: "events of an unknown run",
    method: "GET",
    path: "/runs/{random-uuid}/events",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "events of a non-UUID run id",
    method: "GET",
    path: `/runs/${nonUuid}/events`,
    status: 422,
    code: "invalid_input",
    says: "run id must be a UUID",
  },
  {
    input: "a Last-Event-ID that is not a number",
    method: "GET",
    path: "/runs/{finished-run}/events",
    headers: { accept: "text/event-stream", "last-event-id": "abc" },
    status: 422,
    code: "invalid_input",
    says: "Last-Event-ID",
  },
  {
    input: "a negative Last-Event-ID",
    method: "GET",
    path: "/runs/{finished-run}/events",
    headers: { accept: "text/event-stream", "last-event-id": "-1" },
    status: 422,
    code: "invalid_input",
    says: "Last-Event-ID",
  },
  {
    // Stores keep seq in 32-bit columns: a larger id must not reach them (PostgreSQL would fail the query).
    input: "a Last-Event-ID beyond 2^31 − 1",
    method: "GET",
    path: "/runs/{finished-run}/events",
    headers: { accept: "text/event-stream", "last-event-id": "2147483648" },
    status: 422,
    code: "invalid_input",
    says: "at most 2147483647",
  },
  {
    input: "cancel of a finished run",
    method: "POST",
    path: "/runs/{finished-run}/cancel",
    status: 403,
    code: "invalid_input",
    says: "already finished",
  },
  {
    input: "cancel of an unknown run",
    method: "POST",
    path: "/runs/{random-uuid}/cancel",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "cancel of a non-UUID run id",
    method: "POST",
    path: `/runs/${nonUuid}/cancel`,
    status: 422,
    code: "invalid_input",
    says: "run id must be a UUID",
  },

  // Resume (POST /runs/{run_id}).
  {
    input: "resume of an unknown run",
    method: "POST",
    path: "/runs/{random-uuid}",
    body: resume,
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "resume of a non-UUID run id",
    method: "POST",
    path: `/runs/${nonUuid}`,
    body: resume,
    status: 422,
    code: "invalid_input",
    says: "run id must be a UUID",
  },
  {
    input: "resume of a run that is not awaiting (finished)",
    method: "POST",
    path: "/runs/{finished-run}",
    body: resume,
    status: 403,
    code: "invalid_input",
    says: "not awaiting",
  },
  {
    input: "resume of a run that is not awaiting (running)",
    method: "POST",
    path: "/runs/{running-run}",
    body: resume,
    status: 403,
    code: "invalid_input",
    says: "not awaiting",
  },
  {
    input: "resume with the wrong await type",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { await_resume: { type: "form", message: user("yes") } },
    status: 422,
    code: "invalid_input",
    says: 'await_resume.type must be "message"',
  },
  {
    input: "resume without await_resume",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { mode: "sync" },
    status: 422,
    code: "invalid_input",
    says: "await_resume is required",
  },
  {
    input: "resume whose await_resume is not an object",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { await_resume: "yes" },
    status: 422,
    code: "invalid_input",
    says: "await_resume must be an object",
  },
  {
    input: "resume whose await_resume is an array",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { await_resume: [] },
    status: 422,
    code: "invalid_input",
    says: "await_resume: must be an object, not an array",
  },
  {
    input: "resume without await_resume.message",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { await_resume: { type: "message" } },
    status: 422,
    code: "invalid_input",
    says: "await_resume.message is required",
  },
  {
    input: "resume with an invalid message role",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { await_resume: { type: "message", message: { role: "robot", parts: [{ content: "yes" }] } } },
    status: 422,
    code: "invalid_input",
    says: "role",
  },
  {
    input: "resume with an unknown mode",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { ...resume, mode: "turbo" },
    status: 422,
    code: "invalid_input",
    says: "mode",
  },
  {
    input: "resume with malformed JSON",
    method: "POST",
    path: "/runs/{awaiting-run}",
    raw: "{",
    status: 400,
    code: "invalid_input",
    says: "not valid JSON",
  },
  {
    input: "resume with an empty body",
    method: "POST",
    path: "/runs/{awaiting-run}",
    raw: "",
    status: 400,
    code: "invalid_input",
    says: "empty",
  },
  {
    input: "resume with a wrong Content-Type",
    method: "POST",
    path: "/runs/{awaiting-run}",
    raw: JSON.stringify(resume),
    headers: { "content-type": "text/plain" },
    status: 415,
    code: "invalid_input",
    says: "Content-Type must be application/json",
  },
  {
    input: "resume whose run_id differs from the path",
    method: "POST",
    path: "/runs/{awaiting-run}",
    body: { ...resume, run_id: "00000000-0000-4000-8000-000000000001" },
    status: 422,
    code: "invalid_input",
    says: "differs",
  },

  // Sessions and resources.
  {
    input: "an unknown session",
    method: "GET",
    path: "/sessions/{random-uuid}",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "a non-UUID session id",
    method: "GET",
    path: `/sessions/${nonUuid}`,
    status: 422,
    code: "invalid_input",
    says: "session id must be a UUID",
  },
  {
    input: "an unknown session (spec path)",
    method: "GET",
    path: "/session/{random-uuid}",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "a non-UUID session id (spec path)",
    method: "GET",
    path: `/session/${nonUuid}`,
    status: 422,
    code: "invalid_input",
    says: "session id must be a UUID",
  },
  {
    input: "an unknown resource",
    method: "GET",
    path: "/resources/{random-uuid}",
    status: 404,
    code: "not_found",
    says: "not found",
  },
  {
    input: "a non-UUID resource id",
    method: "GET",
    path: `/resources/${nonUuid}`,
    status: 422,
    code: "invalid_input",
    says: "resource id",
  },

  { input: "an unknown route", method: "GET", path: "/nowhere", status: 404, code: "not_found", says: "/nowhere" },
];

function send(testCase: BadInputCase): Promise<Response> {
  const path = testCase.path.replace(/\{[a-z-]+\}/g, (placeholder) =>
    placeholder === "{random-uuid}" ? randomUUID() : runs[placeholder]!,
  );
  const payload = testCase.raw ?? (testCase.body === undefined ? undefined : JSON.stringify(testCase.body));
  // As a client sends it over HTTP: with its length (app.request() would add none).
  const sized: Record<string, string> =
    payload === undefined
      ? {}
      : { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) };
  return served.request(path, { method: testCase.method, headers: { ...sized, ...testCase.headers }, body: payload });
}

/** What the server answered to each case, in the order of the cases, for the docs. */
const answers = new Map<BadInputCase, Answer>();

describe("bad input", () => {
  for (const testCase of badInputCases) {
    it(`answers ${testCase.status} ${testCase.code} to ${testCase.input}`, async () => {
      const response = await send(testCase);
      expect(response.headers.get("content-type")).toContain("application/json");
      const body = (await response.json()) as { code: string; message: string };
      answers.set(testCase, { status: response.status, code: body.code, message: body.message });
      expect({ status: response.status, code: body.code }).toEqual({ status: testCase.status, code: testCase.code });
      expect(body.message).toContain(testCase.says);
      assertMatchesSchema("Error", body);
    });
  }

  it("stays healthy after all of them, and the runs they touched were not disturbed", async () => {
    expect((await served.request("/ping")).status).toBe(200);
    const status = async (runId: string) =>
      ((await (await served.request(`/runs/${runId}`)).json()) as { status: string }).status;
    expect(await status(runs["{running-run}"]!)).toBe("in-progress");
    expect(await status(runs["{awaiting-run}"]!)).toBe("awaiting");
    const echoed = await served.request("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(run({})),
    });
    expect(((await echoed.json()) as { status: string }).status).toBe("completed");
  });

  it("ends at once the event stream of a finished run asked for after its last event", async () => {
    const runId = runs["{finished-run}"]!;
    const { events } = (await (await served.request(`/runs/${runId}/events`)).json()) as { events: unknown[] };
    for (const lastEventId of [events.length, events.length + 100]) {
      const response = await served.request(`/runs/${runId}/events`, {
        headers: { accept: "text/event-stream", "last-event-id": String(lastEventId) },
      });
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      expect(await response.text()).toBe("");
    }
  });

  it(`keeps ${badInputDocsPath.relative} in step with these cases`, () => {
    const missing = badInputCases.filter((testCase) => !answers.has(testCase)).map((testCase) => testCase.input);
    if (missing.length > 0)
      throw new Error(`The docs need every case to have run; these did not: ${missing.join(", ")}`);
    checkOrWriteDocs(
      renderBadInputDocs(badInputCases.map((testCase) => ({ ...testCase, answer: answers.get(testCase)! }))),
    );
  });
});

/**
 * Bad input over real HTTP: each case gets the right 4xx and an ACP error body `{ code, message }`
 * that names the problem, and the instance stays healthy afterwards.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertMatchesSchema } from "../../../packages/core/test/support/openapi.ts";
import { demoAgents } from "../src/agents.ts";
import { startServer, type DemoServer } from "../src/server.ts";

let demo: DemoServer;
let finishedRunId = "";
let runningRunId = "";

beforeAll(async () => {
  const store = new MemoryStore();
  demo = await startServer(demoAgents, { store, description: "memory", close: async () => store.close?.() }, { port: 0, host: "127.0.0.1", drainMs: 500 });
  const finished = await post("/runs", { agent_name: "echo", input: [{ role: "user", parts: [{ content: "hi" }] }] });
  finishedRunId = ((await finished.json()) as { run_id: string }).run_id;
  const running = await post("/runs", { agent_name: "slow", input: [{ role: "user", parts: [{ content: "ticks=600" }] }], mode: "async" });
  runningRunId = ((await running.json()) as { run_id: string }).run_id;
});

afterAll(async () => {
  if (runningRunId) await post(`/runs/${runningRunId}/cancel`, undefined);
  await demo?.stop();
});

function post(path: string, body: unknown, raw?: string): Promise<Response> {
  return fetch(`${demo.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
}

const user = (content: string) => ({ role: "user", parts: [{ content }] });
const resumeBody = { await_resume: { type: "message", message: user("yes") }, mode: "sync" };

interface Case {
  name: string;
  request: () => Promise<Response>;
  status: number;
  code: "invalid_input" | "not_found" | "server_error";
  /** A piece of the message that names the problem. */
  says: string;
}

export const badInputCases: Case[] = [
  { name: "malformed JSON", request: () => post("/runs", undefined, '{"agent_name": "echo", '), status: 400, code: "invalid_input", says: "not valid JSON" },
  { name: "a body that is not an object", request: () => post("/runs", [1, 2]), status: 422, code: "invalid_input", says: "JSON object" },
  { name: "missing agent_name", request: () => post("/runs", { input: [user("hi")] }), status: 422, code: "invalid_input", says: "agent_name" },
  { name: "agent_name of the wrong type", request: () => post("/runs", { agent_name: 42, input: [user("hi")] }), status: 422, code: "invalid_input", says: "agent_name" },
  { name: "input of the wrong type", request: () => post("/runs", { agent_name: "echo", input: "hi" }), status: 422, code: "invalid_input", says: "input" },
  { name: "an empty input", request: () => post("/runs", { agent_name: "echo", input: [] }), status: 422, code: "invalid_input", says: "input must not be empty" },
  { name: "an invalid message role", request: () => post("/runs", { agent_name: "echo", input: [{ role: "robot", parts: [{ content: "x" }] }] }), status: 422, code: "invalid_input", says: "role" },
  { name: "a message without parts", request: () => post("/runs", { agent_name: "echo", input: [{ role: "user", parts: [] }] }), status: 422, code: "invalid_input", says: "at least one part" },
  {
    name: "a part with both content and content_url",
    request: () => post("/runs", { agent_name: "echo", input: [{ role: "user", parts: [{ content: "x", content_url: "https://example.com/x" }] }] }),
    status: 422,
    code: "invalid_input",
    says: "not both",
  },
  {
    name: "invalid base64 content",
    request: () => post("/runs", { agent_name: "echo", input: [{ role: "user", parts: [{ content: "not base64!", content_encoding: "base64" }] }] }),
    status: 422,
    code: "invalid_input",
    says: "base64",
  },
  { name: "an unknown mode", request: () => post("/runs", { agent_name: "echo", input: [user("hi")], mode: "turbo" }), status: 422, code: "invalid_input", says: "mode" },
  { name: "a non-UUID session_id", request: () => post("/runs", { agent_name: "echo", input: [user("hi")], session_id: "abc" }), status: 422, code: "invalid_input", says: "session id" },
  { name: "an unknown agent", request: () => post("/runs", { agent_name: "nobody", input: [user("hi")] }), status: 404, code: "not_found", says: "nobody" },
  { name: "reading an unknown agent", request: () => fetch(`${demo.url}/agents/nobody`), status: 404, code: "not_found", says: "nobody" },
  { name: "an agents limit out of range", request: () => fetch(`${demo.url}/agents?limit=0`), status: 422, code: "invalid_input", says: "limit" },
  { name: "an unknown run id", request: () => fetch(`${demo.url}/runs/${randomUUID()}`), status: 404, code: "not_found", says: "not found" },
  { name: "a non-UUID run id", request: () => fetch(`${demo.url}/runs/not-a-uuid`), status: 422, code: "invalid_input", says: "run id" },
  { name: "events of an unknown run", request: () => fetch(`${demo.url}/runs/${randomUUID()}/events`), status: 404, code: "not_found", says: "not found" },
  { name: "resume of an unknown run", request: () => post(`/runs/${randomUUID()}`, resumeBody), status: 404, code: "not_found", says: "not found" },
  { name: "resume of a run that is not awaiting", request: () => post(`/runs/${finishedRunId}`, resumeBody), status: 403, code: "invalid_input", says: "not awaiting" },
  { name: "resume with a malformed await_resume", request: () => post(`/runs/${finishedRunId}`, { await_resume: { type: "nope" }, mode: "sync" }), status: 422, code: "invalid_input", says: "await_resume" },
  { name: "resume whose run_id differs from the path", request: () => post(`/runs/${finishedRunId}`, { ...resumeBody, run_id: randomUUID() }), status: 422, code: "invalid_input", says: "differs" },
  { name: "cancel of a finished run", request: () => post(`/runs/${finishedRunId}/cancel`, undefined), status: 403, code: "invalid_input", says: "already finished" },
  { name: "cancel of an unknown run", request: () => post(`/runs/${randomUUID()}/cancel`, undefined), status: 404, code: "not_found", says: "not found" },
  { name: "an unknown session", request: () => fetch(`${demo.url}/sessions/${randomUUID()}`), status: 404, code: "not_found", says: "not found" },
  { name: "an unknown resource", request: () => fetch(`${demo.url}/resources/${randomUUID()}`), status: 404, code: "not_found", says: "not found" },
  { name: "an unknown route", request: () => fetch(`${demo.url}/nowhere`), status: 404, code: "not_found", says: "/nowhere" },
];

describe("bad input", () => {
  for (const testCase of badInputCases) {
    it(`answers ${testCase.status} ${testCase.code} to ${testCase.name}`, async () => {
      const response = await testCase.request();
      const body = (await response.json()) as { code: string; message: string };
      expect({ status: response.status, code: body.code }).toEqual({ status: testCase.status, code: testCase.code });
      expect(body.message).toContain(testCase.says);
      assertMatchesSchema("Error", body);
    });
  }

  it("stays healthy after all of them, and the running run was not disturbed", async () => {
    expect((await fetch(`${demo.url}/ping`)).status).toBe(200);
    const run = (await (await fetch(`${demo.url}/runs/${runningRunId}`)).json()) as { status: string };
    expect(run.status).toBe("in-progress");
  });
});

/**
 * Tenancy with API keys, through `app.request()` over a MemoryStore: a run and a session belong
 * to the tenant of the key that created them, and another key gets exactly the 404 of an unknown
 * run or session. Keys named with the same tenant (rotation) share everything.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { type Agent, agent, createApp, type Message, type Run, TENANT_VARIABLE } from "../src/index.ts";
import { jsonInit, startApp, stopApps, type TestApp, user } from "./support/app.ts";

const textOf = (messages: Message[]): string[] =>
  messages.map((message) => message.parts.map((part) => part.content ?? "").join(""));

/** Reports, as JSON text, the messages loadHistory() yields. */
const historyReport = agent({ name: "history-report" }, async function* (_input, ctx) {
  const seen: Message[] = [];
  for await (const message of ctx.session.loadHistory()) seen.push(message);
  yield JSON.stringify(textOf(seen));
});

/** Asks for a resume, then answers. */
const asking = agent({ name: "asking" }, async function* () {
  yield { type: "message", message: { parts: [{ content: "go on?" }] } };
  yield "done";
});

const agents: Agent[] = [historyReport, asking];

const ALICE = { authorization: "Bearer alice-key" };
const BOB = { "x-api-key": "bob-key" };
/** A second key of Alice's tenant, as during a key rotation. */
const ALICE_NEW = { authorization: "Bearer alice-new-key" };

afterEach(() => stopApps());

function start(): Promise<TestApp> {
  return startApp(agents, {
    auth: {
      apiKeys: ["bob-key", { key: "alice-key", tenant: "alice" }, { key: "alice-new-key", tenant: "alice" }],
    },
  });
}

async function send(
  served: TestApp,
  method: "GET" | "POST",
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const init = method === "POST" ? jsonInit(body ?? {}, headers) : { headers };
  const response = await served.request(path, init);
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

async function createRun(
  served: TestApp,
  headers: Record<string, string>,
  body: Record<string, unknown>,
  status = 200,
): Promise<Run> {
  const answer = await send(served, "POST", "/runs", headers, { mode: "sync", ...body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  return answer.body as Run;
}

/** What loadHistory() yielded in a history-report run. */
const reported = (run: Run): string[] => JSON.parse(run.output[0]?.parts[0]?.content ?? "null") as string[];

const resumeBody = (runId: string) => ({
  run_id: runId,
  await_resume: { type: "message", message: user("yes") },
  mode: "sync",
});

describe("tenancy with API keys", () => {
  it("answers another tenant's run exactly as an unknown run, on every run route", async () => {
    const served = await start();
    const run = await createRun(served, ALICE, { agent_name: "asking", input: [user("hi")] });
    expect(run.status).toBe("awaiting");
    const unknown = randomUUID();
    const routes = (id: string) =>
      [
        ["GET", `/runs/${id}`, undefined],
        ["GET", `/runs/${id}/events`, undefined],
        ["POST", `/runs/${id}`, resumeBody(id)],
        ["POST", `/runs/${id}/cancel`, undefined],
      ] as const;
    const unknownRoutes = routes(unknown);
    for (const [index, [method, path, body]] of routes(run.run_id).entries()) {
      const foreign = await send(served, method, path, BOB, body);
      const [, unknownPath, unknownBody] = unknownRoutes[index]!;
      const missing = await send(served, method, unknownPath, BOB, unknownBody);
      expect(foreign.status, `${method} ${path}`).toBe(404);
      expect(JSON.stringify(foreign.body).replace(run.run_id, unknown), `${method} ${path}`).toBe(
        JSON.stringify(missing.body),
      );
    }
    // An SSE reader of another tenant gets the 404 too, not a stream.
    const sse = await served.request(`/runs/${run.run_id}/events`, {
      headers: { ...BOB, accept: "text/event-stream" },
    });
    expect(sse.status).toBe(404);
    await sse.body?.cancel();

    // Nothing of Bob's attempts reached the run: Alice still finds it awaiting, and resumes it.
    const seen = await send(served, "GET", `/runs/${run.run_id}`, ALICE);
    expect(seen.status).toBe(200);
    expect((seen.body as Run).status).toBe("awaiting");
    const events = await send(served, "GET", `/runs/${run.run_id}/events`, ALICE);
    expect(events.status).toBe(200);
    const resumed = await send(served, "POST", `/runs/${run.run_id}`, ALICE, resumeBody(run.run_id));
    expect(resumed.status).toBe(200);
    expect((resumed.body as Run).status).toBe("completed");
  });

  it("lets the owner cancel, and another key of the same tenant read and cancel", async () => {
    const served = await start();
    const first = await createRun(served, ALICE, { agent_name: "asking", input: [user("hi")] });
    expect((await send(served, "POST", `/runs/${first.run_id}/cancel`, BOB)).status).toBe(404);
    expect((await send(served, "POST", `/runs/${first.run_id}/cancel`, ALICE)).status).toBe(202);
    const second = await createRun(served, ALICE, { agent_name: "asking", input: [user("hi")] });
    expect((await send(served, "GET", `/runs/${second.run_id}`, ALICE_NEW)).status).toBe(200);
    expect((await send(served, "POST", `/runs/${second.run_id}/cancel`, ALICE_NEW)).status).toBe(202);
  });

  it("keeps a session to its tenant: another key gets 404 and, reusing the id, a fresh history", async () => {
    const served = await start();
    const sessionId = randomUUID();
    await createRun(served, ALICE, { agent_name: "history-report", input: [user("a1")], session_id: sessionId });
    const aliceSecond = await createRun(served, ALICE, {
      agent_name: "history-report",
      input: [user("a2")],
      session_id: sessionId,
    });
    expect(reported(aliceSecond)).toContain("a1");
    const before = await send(served, "GET", `/sessions/${sessionId}`, ALICE);
    expect(before.status).toBe(200);
    const aliceItems = (before.body as { history: string[] }).history;
    expect(aliceItems.length).toBeGreaterThan(0);

    const foreign = await send(served, "GET", `/sessions/${sessionId}`, BOB);
    const unknownId = randomUUID();
    const missing = await send(served, "GET", `/sessions/${unknownId}`, BOB);
    expect(foreign.status).toBe(404);
    expect(JSON.stringify(foreign.body).replace(sessionId, unknownId)).toBe(JSON.stringify(missing.body));
    expect((await send(served, "GET", `/session/${sessionId}`, BOB)).status).toBe(404);

    // Bob reusing the id starts a session of his own, as a first run with a new id would.
    const bobRun = await createRun(served, BOB, {
      agent_name: "history-report",
      input: [user("b1")],
      session_id: sessionId,
    });
    const bobFresh = await createRun(served, BOB, {
      agent_name: "history-report",
      input: [user("b1")],
      session_id: randomUUID(),
    });
    expect(bobRun.session_id).toBe(sessionId);
    expect(reported(bobRun)).toEqual(reported(bobFresh));
    expect(reported(bobRun)).not.toContain("a1");

    // Alice's session is untouched, and Bob's is his own.
    const after = await send(served, "GET", `/sessions/${sessionId}`, ALICE);
    expect((after.body as { history: string[] }).history).toEqual(aliceItems);
    const bobSession = await send(served, "GET", `/sessions/${sessionId}`, BOB);
    expect(bobSession.status).toBe(200);
    const bobItems = (bobSession.body as { history: string[] }).history;
    expect(bobItems.length).toBeGreaterThan(0);
    expect(bobItems.some((url) => aliceItems.includes(url))).toBe(false);
    const aliceThird = await createRun(served, ALICE_NEW, {
      agent_name: "history-report",
      input: [user("a3")],
      session_id: sessionId,
    });
    expect(reported(aliceThird)).toEqual(expect.arrayContaining(["a1", "a2"]));
    expect(reported(aliceThird)).not.toContain("b1");
  });

  it("stores a key's tenant name, or a digest of an unnamed key, never the key", async () => {
    const served = await start();
    const alices = await createRun(served, ALICE, { agent_name: "history-report", input: [user("x")] });
    const bobs = await createRun(served, BOB, { agent_name: "history-report", input: [user("x")] });
    expect((await served.store.getRun(alices.run_id))?.tenant).toBe("alice");
    const bobTenant = (await served.store.getRun(bobs.run_id))?.tenant;
    expect(bobTenant).toMatch(/^key:[0-9a-f]{32}$/);
    expect(JSON.stringify(await served.store.getRun(bobs.run_id))).not.toContain("bob-key");
  });

  it("takes the tenant that a middleware of the embedding app sets", async () => {
    const store = new MemoryStore();
    const app = createApp(agents, { store });
    const outer = new Hono<{ Variables: { [TENANT_VARIABLE]?: string } }>();
    outer.use(async (c, next) => {
      c.set(TENANT_VARIABLE, c.req.header("x-team"));
      await next();
    });
    outer.route("/", app);
    try {
      const response = await outer.request(
        "/runs",
        jsonInit({ agent_name: "asking", input: [user("hi")], mode: "sync" }, { "x-team": "red" }),
      );
      const run = (await response.json()) as Run;
      expect((await outer.request(`/runs/${run.run_id}`, { headers: { "x-team": "red" } })).status).toBe(200);
      expect((await outer.request(`/runs/${run.run_id}`, { headers: { "x-team": "blue" } })).status).toBe(404);
    } finally {
      await app.shutdown({ deadlineMs: 100 });
      await store.close();
    }
  });

  it("shares runs and sessions between all keys without a tenant when auth is off", async () => {
    const served = await startApp(agents);
    const sessionId = randomUUID();
    const run = await createRun(
      served,
      {},
      { agent_name: "history-report", input: [user("x")], session_id: sessionId },
    );
    expect((await send(served, "GET", `/runs/${run.run_id}`, BOB)).status).toBe(200);
    expect((await send(served, "GET", `/sessions/${sessionId}`, ALICE)).status).toBe(200);
  });
});

/**
 * Every route of the ACP app through `app.request()` over an in-process memory store: what each
 * answers, SSE bodies read byte for byte, and the answers matched against the ACP OpenAPI document.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { approval, echo, failing, slow, testAgents, words } from "../../test/support/agents.ts";
import {
  createRun,
  eventually,
  jsonInit,
  parseFrames,
  readUntil,
  startApp,
  stopApps,
  type TestApp,
  user,
} from "../../test/support/app.ts";
import { controlledStore } from "../../test/support/controlled-store.ts";
import { assertMatchesSchema } from "../../test/support/openapi.ts";
import type { Event, Run } from "../models.ts";
import { createApp } from "./app.ts";

afterEach(async () => {
  await stopApps(200);
});

/** The SSE body the app must send for `events`, numbered from `firstSeq`. */
function sseOf(events: Event[], firstSeq: number): string {
  return events.map((event, index) => `data: ${JSON.stringify(event)}\nid: ${firstSeq + index}\n\n`).join("");
}

async function eventsOf(served: TestApp, runId: string): Promise<Event[]> {
  return (await served.getJson<{ events: Event[] }>(`/runs/${runId}/events`)).events;
}

async function runOf(served: TestApp, runId: string): Promise<Run> {
  return served.getJson<Run>(`/runs/${runId}`);
}

/** Waits, through the store, until the run has one of `statuses`. */
function statusOf(served: TestApp, runId: string, ...statuses: Run["status"][]): Promise<Run> {
  return eventually(async () => {
    const run = await runOf(served, runId);
    return statuses.includes(run.status) && run;
  });
}

const sse = { accept: "text/event-stream" };

describe("createApp", () => {
  it("refuses to build without a store, and names itself in an option error", () => {
    expect(() => createApp([echo], undefined as never)).toThrow(/createApp\(\): options.store is required/);
    expect(() => createApp([echo], { store: new MemoryStore(), leaseMs: 1 })).toThrow(
      /\[acp\] createApp\(\): leaseMs must be .* at least 100, got 1/,
    );
    expect(() => createApp([echo, echo], { store: new MemoryStore() })).toThrow(/two agents are named "echo"/);
  });
});

describe("GET /ping", () => {
  it("answers 200 with {} while the store answers", async () => {
    const served = await startApp([echo]);
    const response = await served.request("/ping");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});
  });

  it("answers 503 while the store does not answer, and 200 again once it does", async () => {
    const { store, control } = controlledStore();
    const served = await startApp([echo], {}, store);
    control.failing = new Set(["ping"]);
    const down = await served.request("/ping");
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ code: "server_error", message: "The store is unavailable" });
    control.failing = new Set();
    // Once its cached check (a second at most) is over.
    await eventually(async () => (await served.request("/ping")).status === 200);
  });
});

describe("GET /agents", () => {
  it("lists the manifests in the order given, a page at a time", async () => {
    const served = await startApp(testAgents);
    const all = await served.getJson<{ agents: unknown[] }>("/agents");
    assertMatchesSchema("AgentsListResponse", all);
    expect(all.agents).toEqual(testAgents.map((agent) => agent.manifest));
    const page = await served.getJson<{ agents: { name: string }[] }>("/agents?limit=2&offset=1");
    expect(page.agents.map((agent) => agent.name)).toEqual([slow.manifest.name, approval.manifest.name]);
    expect((await served.getJson<{ agents: unknown[] }>("/agents?offset=99")).agents).toEqual([]);
  });

  it("answers one agent's manifest by name", async () => {
    const served = await startApp(testAgents);
    const manifest = await served.getJson("/agents/words");
    assertMatchesSchema("AgentManifest", manifest);
    expect(manifest).toEqual(words.manifest);
  });
});

describe("POST /runs", () => {
  it("answers a sync run once it completed, with its id in Run-ID", async () => {
    const served = await startApp([echo]);
    const response = await served.post("/runs", { agent_name: "echo", input: [user("hello")] });
    expect(response.status).toBe(200);
    const run = (await response.json()) as Run;
    assertMatchesSchema("Run", run);
    expect(response.headers.get("run-id")).toBe(run.run_id);
    expect(run).toMatchObject({ agent_name: "echo", status: "completed", error: null, await_request: null });
    expect(run.output.map((message) => [message.role, message.parts.map((part) => part.content)])).toEqual([
      ["agent/echo", ["hello"]],
    ]);
    expect(run.finished_at).toEqual(expect.any(String));
    expect(await runOf(served, run.run_id)).toEqual(run);
  });

  it("answers an async run at once with 202 as created; it then runs to its end", async () => {
    const served = await startApp([slow]);
    const response = await served.post("/runs", { agent_name: "slow", input: [user("ticks=2 ms=10")], mode: "async" });
    expect(response.status).toBe(202);
    const run = (await response.json()) as Run;
    assertMatchesSchema("Run", run);
    expect(run.status).toBe("created");
    expect(response.headers.get("run-id")).toBe(run.run_id);
    const ended = await statusOf(served, run.run_id, "completed", "failed");
    expect(ended.status).toBe("completed");
    expect(ended.output[0]!.parts.map((part) => part.content)).toEqual(["tick 1 ", "tick 2 "]);
  });

  it("streams a run's events as SSE, each frame with its seq as id, and ends after its terminal event", async () => {
    const served = await startApp([words]);
    const response = await served.post("/runs", {
      agent_name: "words",
      input: [user("one two three")],
      mode: "stream",
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    expect(response.headers.get("cache-control")).toBe("no-cache");
    expect(response.headers.get("x-accel-buffering")).toBe("no");
    const runId = response.headers.get("run-id")!;
    const body = await response.text();
    const events = await eventsOf(served, runId);
    expect(body).toBe(sseOf(events, 1));
    expect(events.map((event) => event.type)).toEqual([
      "run.created",
      "run.in-progress",
      "message.created",
      "message.part",
      "message.part",
      "message.part",
      "message.completed",
      "run.completed",
    ]);
    for (const event of events) assertMatchesSchema("Event", event);
  });

  it("fails a run whose agent throws an ACPError with exactly that error", async () => {
    const served = await startApp([failing]);
    const run = await createRun(served, { agent_name: "failing", input: [user("no")] });
    expect(run.status).toBe("failed");
    expect(run.error).toEqual({
      code: "invalid_input",
      message: "The failing agent refuses this input",
      data: { hint: "try another agent" },
    });
    assertMatchesSchema("Run", run);
  });

  it("fails a run whose agent throws another error with a generic error, and logs the original", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const served = await startApp([failing]);
      const run = await createRun(served, { agent_name: "failing", input: [user("crash")] });
      expect(run.error).toEqual({ code: "server_error", message: "The agent failed with an internal error" });
      expect(String(logged.mock.calls.flat().find((value) => value instanceof Error))).toContain(
        "internal detail that must not leak",
      );
    } finally {
      logged.mockRestore();
    }
  });
});

describe("POST /runs/{run_id} (resume)", () => {
  it("answers a sync run when it awaits, and a sync resume when it completed", async () => {
    const served = await startApp([approval]);
    const awaiting = await createRun(served, { agent_name: "approval", input: [user("the plan")] });
    expect(awaiting.status).toBe("awaiting");
    expect(awaiting.await_request).toEqual({
      type: "message",
      message: expect.objectContaining({ parts: [expect.objectContaining({ content: "Do you approve the plan?" })] }),
    });
    assertMatchesSchema("Run", awaiting);
    const response = await served.post(`/runs/${awaiting.run_id}`, {
      await_resume: { type: "message", message: user("yes") },
      mode: "sync",
    });
    expect(response.status).toBe(200);
    const run = (await response.json()) as Run;
    expect(run.status).toBe("completed");
    expect(run.output.flatMap((message) => message.parts.map((part) => part.content))).toEqual([
      "Planning the plan.",
      "Approved: the plan.",
    ]);
  });

  it("streams a resumed run from its run.in-progress event to its end", async () => {
    const served = await startApp([approval]);
    const started = await served.post("/runs", { agent_name: "approval", input: [user("it")], mode: "stream" });
    const runId = started.headers.get("run-id")!;
    const first = parseFrames(await started.text());
    expect(first.at(-1)!.data.type).toBe("run.awaiting");
    const resumed = await served.post(`/runs/${runId}`, {
      await_resume: { type: "message", message: user("no") },
      mode: "stream",
    });
    expect(resumed.status).toBe(200);
    const body = await resumed.text();
    const events = await eventsOf(served, runId);
    expect(body).toBe(sseOf(events.slice(first.length), first.length + 1));
    expect(events[first.length]!.type).toBe("run.in-progress");
    expect(events.at(-1)).toMatchObject({ type: "run.completed", run: { status: "completed" } });
  });

  it("answers an async resume with 202 as in progress; the run then goes on", async () => {
    const served = await startApp([approval]);
    const awaiting = await createRun(served, { agent_name: "approval", input: [user("it")] });
    const response = await served.post(`/runs/${awaiting.run_id}`, {
      await_resume: { type: "message", message: user("yes") },
      mode: "async",
    });
    expect(response.status).toBe(202);
    expect(((await response.json()) as Run).status).toBe("in-progress");
    expect((await statusOf(served, awaiting.run_id, "completed")).output.at(-1)!.parts[0]!.content).toBe(
      "Approved: it.",
    );
  });

  it("lets exactly one of two concurrent resumes through", async () => {
    const served = await startApp([approval]);
    const awaiting = await createRun(served, { agent_name: "approval", input: [user("it")] });
    const resume = { await_resume: { type: "message", message: user("yes") }, mode: "async" };
    const answers = await Promise.all([
      served.post(`/runs/${awaiting.run_id}`, resume),
      served.post(`/runs/${awaiting.run_id}`, resume),
    ]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([202, 403]);
    await statusOf(served, awaiting.run_id, "completed");
    expect((await eventsOf(served, awaiting.run_id)).filter((event) => event.type === "run.in-progress")).toHaveLength(
      2,
    );
  });
});

describe("POST /runs/{run_id}/cancel", () => {
  it("answers 202 with the run cancelling; the agent stops and the run ends cancelled", async () => {
    const served = await startApp([slow]);
    const run = await createRun(served, { agent_name: "slow", input: [user("ticks=500 ms=10")], mode: "async" }, 202);
    await eventually(async () => (await eventsOf(served, run.run_id)).some((event) => event.type === "message.part"));
    const response = await served.request(`/runs/${run.run_id}/cancel`, { method: "POST" });
    expect(response.status).toBe(202);
    expect(((await response.json()) as Run).status).toBe("cancelling");
    const ended = await statusOf(served, run.run_id, "cancelled", "completed", "failed");
    expect(ended.status).toBe("cancelled");
    const events = await eventsOf(served, run.run_id);
    expect(events.at(-1)!.type).toBe("run.cancelled");
    expect(events.filter((event) => event.type === "message.part").length).toBeLessThan(500);
  });

  it("cancels an awaiting run", async () => {
    const served = await startApp([approval]);
    const awaiting = await createRun(served, { agent_name: "approval", input: [user("it")] });
    expect((await served.request(`/runs/${awaiting.run_id}/cancel`, { method: "POST" })).status).toBe(202);
    expect((await statusOf(served, awaiting.run_id, "cancelled")).await_request).toBeNull();
  });

  it("ends an open stream of the run with run.cancelled", async () => {
    const served = await startApp([slow]);
    const response = await served.post("/runs", {
      agent_name: "slow",
      input: [user("ticks=500 ms=10")],
      mode: "stream",
    });
    const runId = response.headers.get("run-id")!;
    const { text, reader } = await readUntil(response, (sofar) => sofar.includes("message.part"));
    await served.request(`/runs/${runId}/cancel`, { method: "POST" });
    let rest = "";
    const decoder = new TextDecoder();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += decoder.decode(chunk.value, { stream: true });
    const frames = parseFrames(text + rest);
    expect(frames.at(-1)!.data.type).toBe("run.cancelled");
    expect(text + rest).toBe(sseOf(await eventsOf(served, runId), 1));
  });
});

describe("GET /runs/{run_id}/events", () => {
  it("lists a run's events as JSON", async () => {
    const served = await startApp([words]);
    const run = await createRun(served, { agent_name: "words", input: [user("a b")] });
    const body = await served.getJson(`/runs/${run.run_id}/events`);
    assertMatchesSchema("RunEventsListResponse", body);
    const { events } = body as { events: Event[] };
    expect(events[0]).toMatchObject({ type: "run.created", run: { run_id: run.run_id, status: "created" } });
    expect(events.at(-1)).toMatchObject({ type: "run.completed", run });
  });

  it("streams after Last-Event-ID exactly the events that follow it", async () => {
    const served = await startApp([words]);
    const run = await createRun(served, { agent_name: "words", input: [user("a b c")] });
    const events = await eventsOf(served, run.run_id);
    for (const last of [0, 1, 4, events.length - 1]) {
      const response = await served.request(`/runs/${run.run_id}/events`, {
        headers: { ...sse, "last-event-id": String(last) },
      });
      expect(response.headers.get("content-type")).toBe("text/event-stream");
      expect(await response.text()).toBe(sseOf(events.slice(last), last + 1));
    }
  });

  it("follows a live run to its end", async () => {
    const served = await startApp([slow]);
    const run = await createRun(served, { agent_name: "slow", input: [user("ticks=3 ms=20")], mode: "async" }, 202);
    const response = await served.request(`/runs/${run.run_id}/events`, { headers: sse });
    const body = await response.text();
    const events = await eventsOf(served, run.run_id);
    expect(events.at(-1)!.type).toBe("run.completed");
    expect(body).toBe(sseOf(events, 1));
  });
});

describe("GET /sessions/{session_id} and GET /resources/{resource_id}", () => {
  it("lists a session's history as resource URLs, inputs and outputs of its runs in order", async () => {
    const served = await startApp([echo]);
    const sessionId = randomUUID();
    await createRun(served, { agent_name: "echo", input: [user("first")], session_id: sessionId });
    await createRun(served, { agent_name: "echo", input: [user("second")], session: { id: sessionId } });
    for (const path of [`/sessions/${sessionId}`, `/session/${sessionId}`]) {
      const session = await served.getJson<{ id: string; history: string[] }>(path);
      assertMatchesSchema("Session", session);
      expect(session.id).toBe(sessionId);
      expect(session.history).toHaveLength(4);
      const messages = await Promise.all(
        session.history.map(async (url) => {
          expect(url).toMatch(/^http:\/\/localhost\/resources\/[0-9a-f-]{36}$/);
          return served.getJson<{ role: string; parts: { content: string }[] }>(new URL(url).pathname);
        }),
      );
      expect(messages.map((message) => [message.role, message.parts[0]!.content])).toEqual([
        ["user", "first"],
        ["agent/echo", "first"],
        ["user", "second"],
        ["agent/echo", "second"],
      ]);
      for (const message of messages) assertMatchesSchema("Message", message);
    }
  });

  it("builds resource URLs on baseUrl when one is set", async () => {
    const served = await startApp([echo], { baseUrl: "https://acp.example.com/api" });
    const run = await createRun(served, { agent_name: "echo", input: [user("hi")] });
    const session = await served.getJson<{ history: string[] }>(`/sessions/${run.session_id}`);
    expect(session.history[0]).toMatch(/^https:\/\/acp\.example\.com\/api\/resources\/[0-9a-f-]{36}$/);
  });

  it("answers 503 when the store fails, never the backend's message", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const { store, control } = controlledStore();
      const served = await startApp([echo], {}, store);
      control.failing = new Set(["getHistory", "getSession", "getHistoryItem"]);
      for (const path of [`/sessions/${randomUUID()}`, `/resources/${randomUUID()}`]) {
        const response = await served.request(path);
        expect(response.status).toBe(503);
        expect(await response.json()).toEqual({
          code: "server_error",
          message: "The store is unavailable; try again shortly",
        });
      }
    } finally {
      errors.mockRestore();
    }
  });
});

describe("shutdown", () => {
  it("drains: /ping and POST /runs answer 503, a run that ends in time completes, one that does not fails", async () => {
    const served = await startApp([slow]);
    const quick = await createRun(served, { agent_name: "slow", input: [user("ticks=2 ms=20")], mode: "async" }, 202);
    const long = await createRun(served, { agent_name: "slow", input: [user("ticks=1000 ms=10")], mode: "async" }, 202);
    const stopping = served.app.shutdown({ deadlineMs: 300 });
    const ping = await served.request("/ping");
    expect(ping.status).toBe(503);
    expect(await ping.json()).toEqual({ code: "server_error", message: "This instance is shutting down" });
    const refused = await served.request("/runs", jsonInit({ agent_name: "slow", input: [user("ticks=1")] }));
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { message: string }).message).toContain("shutting down");
    await stopping;
    expect((await runOf(served, quick.run_id)).status).toBe("completed");
    const failed = await runOf(served, long.run_id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toEqual({
      code: "server_error",
      message: "The server instance shut down before the run finished",
    });
    expect(served.app.runtime.localRuns).toBe(0);
  });
});

/**
 * What one request, one slow client or one long session may ask of an instance: history loading
 * bounds, array lengths checked before their items, session caps, concurrent runs and streams
 * past their limits (503 with Retry-After), a sync run whose client went away, SSE keep-alive
 * comments, a cached `/ping`, and a runtime that starts on the first request of any kind.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { agent, createApp, type Message, type Run } from "../src/index.ts";
import { echo, slow, testAgents } from "./support/agents.ts";
import { createRun, eventually, jsonInit, readUntil, startApp, stopApps, user } from "./support/app.ts";
import { controlledStore } from "./support/controlled-store.ts";

afterEach(async () => {
  vi.restoreAllMocks();
  await stopApps(200);
});

/** Answers with the number of history messages it saw, its own input ("count") not counted. */
const historian = agent(
  { name: "historian", description: "Counts its history" },
  async function* historian(_input, ctx) {
    const seen: Message[] = [];
    for await (const message of ctx.session.loadHistory())
      if (message.parts[0]?.content !== "count") seen.push(message);
    yield `${seen.length}`;
  },
);

/** Runs `slow` and remembers the ids of the runs it was given. */
const seenRunIds: string[] = [];
const remembered = agent(
  { name: "remembered", description: "A slow run that tells its id" },
  async function* remembered(input, ctx) {
    seenRunIds.push(ctx.runId);
    yield* slow.handler(input, ctx) as AsyncGenerator<string>;
  },
);

const textOfRun = (run: Run): string => run.output.map((message) => message.parts[0]?.content ?? "").join("");

/** The history item ids of a session that holds `count` echoed messages. */
async function sessionWithItems(
  served: Awaited<ReturnType<typeof startApp>>,
  count: number,
  text = "hi",
): Promise<string[]> {
  const sessionId = randomUUID();
  for (let index = 0; index < count / 2; index++)
    await createRun(served, { agent_name: "echo", input: [user(text)], session_id: sessionId });
  return (await served.getJson<{ history: string[] }>(`/sessions/${sessionId}`)).history;
}

describe("lengths are checked before items", () => {
  it("refuses too many input messages by their count, not by the first bad item", async () => {
    const served = await startApp([echo], { limits: { maxInputMessages: 3 } });
    const response = await served.post("/runs", { agent_name: "echo", input: Array(50).fill({ parts: 5 }) });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { message: string }).message).toContain("maxInputMessages");
  });

  it("refuses too many parts by their count, not by the first bad part", async () => {
    const served = await startApp([echo], { limits: { maxPartsPerMessage: 3 } });
    const response = await served.post("/runs", { agent_name: "echo", input: [{ parts: Array(50).fill(7) }] });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { message: string }).message).toContain("maxPartsPerMessage");
  });

  it("refuses a session.history longer than maxHistoryItems by its count", async () => {
    const served = await startApp([echo], { limits: { maxHistoryItems: 3 } });
    const response = await served.post("/runs", {
      agent_name: "echo",
      input: [user("hi")],
      session: { id: randomUUID(), history: Array(50).fill("not a url") },
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_input");
    expect(body.message).toContain("maxHistoryItems");
  });

  it("refuses 1,001 history URLs by default", async () => {
    const served = await startApp([echo]);
    const url = `http://localhost/resources/${randomUUID()}`;
    const response = await served.post("/runs", {
      agent_name: "echo",
      input: [user("hi")],
      session: { id: randomUUID(), history: Array(1001).fill(url) },
    });
    expect(response.status).toBe(422);
  });
});

describe("session history descriptors", () => {
  it("loads a local URL given many times once, and yields it once", async () => {
    const { store, control } = controlledStore();
    const served = await startApp([echo, historian], {}, store);
    const [url] = await sessionWithItems(served, 2);
    control.calls = {};
    const run = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history: Array(500).fill(url) },
    });
    expect(textOfRun(run)).toBe("1");
    expect(control.calls.getHistoryItem ?? 0).toBe(1);
  });

  it("reads from the store only URLs of this deployment's origin", async () => {
    const { store, control } = controlledStore();
    const served = await startApp([echo, historian], {}, store);
    const [url] = await sessionWithItems(served, 2);
    const foreign = url!.replace("http://localhost", "https://elsewhere.example");
    control.calls = {};
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const run = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history: [foreign] },
    });
    expect(textOfRun(run)).toBe("0");
    expect(control.calls.getHistoryItem ?? 0).toBe(0);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("takes baseUrl's origin as this deployment's", async () => {
    const served = await startApp([echo, historian], { baseUrl: "https://acp.example.com" });
    const [url] = await sessionWithItems(served, 2);
    expect(url).toMatch(/^https:\/\/acp\.example\.com\/resources\//);
    const run = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history: [url] },
    });
    expect(textOfRun(run)).toBe("1");
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const direct = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history: [url!.replace("https://acp.example.com", "http://localhost")] },
    });
    expect(textOfRun(direct)).toBe("0");
  });

  it("logs one line per run for all the items it left out", async () => {
    const served = await startApp([historian]);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const history = Array.from({ length: 20 }, (_, index) => `https://elsewhere.example/resources/${index}`);
    const run = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history },
    });
    expect(textOfRun(run)).toBe("0");
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain("20");
  });

  it("stops loading past maxHistoryBytes", async () => {
    const served = await startApp([echo, historian], { limits: { maxHistoryBytes: 1300 } });
    const urls = await sessionWithItems(served, 6, "x".repeat(400));
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const run = await createRun(served, {
      agent_name: "historian",
      input: [user("count")],
      session: { id: randomUUID(), history: urls },
    });
    expect(Number(textOfRun(run))).toBe(2);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain("maxHistoryBytes");
  });
});

describe("session caps", () => {
  it("refuses a run in a session that holds maxSessionItems items, and says to start a new one", async () => {
    const served = await startApp([echo], { limits: { maxSessionItems: 4 } });
    const sessionId = randomUUID();
    await createRun(served, { agent_name: "echo", input: [user("one")], session_id: sessionId });
    await createRun(served, { agent_name: "echo", input: [user("two")], session_id: sessionId });
    const response = await served.post("/runs", { agent_name: "echo", input: [user("three")], session_id: sessionId });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_input");
    expect(body.message).toContain("maxSessionItems");
    expect(body.message).toContain("new session");
  });

  it("refuses a run in a session that holds maxSessionBytes bytes", async () => {
    const served = await startApp([echo], { limits: { maxSessionBytes: 500 } });
    const sessionId = randomUUID();
    await createRun(served, { agent_name: "echo", input: [user("x".repeat(300))], session_id: sessionId });
    const response = await served.post("/runs", { agent_name: "echo", input: [user("more")], session_id: sessionId });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { message: string }).message).toContain("maxSessionBytes");
  });

  it("lists a session without loading its messages", async () => {
    const { store, control } = controlledStore();
    const served = await startApp([echo], {}, store);
    const run = await createRun(served, { agent_name: "echo", input: [user("hi")] });
    control.calls = {};
    const listed = await served.getJson<{ history: string[] }>(`/sessions/${run.session_id}`);
    expect(listed.history).toHaveLength(2);
    expect(control.calls.getHistory ?? 0).toBe(0);
    expect(control.calls.getSession).toBe(1);
  });
});

describe("over capacity", () => {
  it("answers 503 with Retry-After past maxConcurrentRuns, and stays healthy", async () => {
    const served = await startApp(testAgents, { limits: { maxConcurrentRuns: 5 } });
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => served.post("/runs", { agent_name: "slow", input: [user("ticks=3 ms=100")] })),
    );
    const statuses = answers.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(5);
    expect(statuses.filter((status) => status === 503)).toHaveLength(15);
    for (const response of answers) {
      if (response.status === 200) {
        expect(((await response.json()) as Run).status).toBe("completed");
      } else {
        expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        const body = (await response.json()) as { code: string; message: string };
        expect(body.code).toBe("server_error");
        expect(body.message).toContain("maxConcurrentRuns");
      }
    }
    expect((await served.request("/ping")).status).toBe(200);
    expect(served.app.runtime.localRuns).toBe(0);
    expect((await served.post("/runs", { agent_name: "echo", input: [user("again")] })).status).toBe(200);
  });

  it("answers 503 with Retry-After past maxStreams, for every kind of stream, and frees a slot when one closes", async () => {
    const served = await startApp(testAgents, { limits: { maxStreams: 2 } });
    const running = await createRun(
      served,
      { agent_name: "slow", input: [user("ticks=100 ms=100")], mode: "async" },
      202,
    );
    const open = (): Promise<Response> =>
      served.request(`/runs/${running.run_id}/events`, { headers: { accept: "text/event-stream" } });
    const first = await open();
    const second = await open();
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await open();
    expect(third.status).toBe(503);
    expect(third.headers.get("retry-after")).toBeTruthy();
    expect(((await third.json()) as { message: string }).message).toContain("maxStreams");
    const runsBefore = served.app.runtime.localRuns;
    const streamed = await served.post("/runs", { agent_name: "echo", input: [user("hi")], mode: "stream" });
    expect(streamed.status).toBe(503);
    expect(served.app.runtime.localRuns).toBe(runsBefore);
    await first.body!.cancel();
    await eventually(async () => (await open()).status === 200);
    await second.body!.cancel();
  });
});

describe("a streamed resume past maxStreams", () => {
  it("answers 503 before it resumes anything, so the client can send it again", async () => {
    const served = await startApp(testAgents, { limits: { maxStreams: 1 } });
    const awaiting = await createRun(served, { agent_name: "approval", input: [user("the plan")] }, 200);
    expect(awaiting.status).toBe("awaiting");
    const busy = await createRun(served, { agent_name: "slow", input: [user("ticks=100 ms=100")], mode: "async" }, 202);
    const open = await served.request(`/runs/${busy.run_id}/events`, { headers: { accept: "text/event-stream" } });
    expect(open.status).toBe(200);
    const resume = {
      run_id: awaiting.run_id,
      await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } },
      mode: "stream",
    };
    const refused = await served.post(`/runs/${awaiting.run_id}`, resume);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect((await served.getJson<Run>(`/runs/${awaiting.run_id}`)).status).toBe("awaiting");
    await open.body!.cancel();
    const accepted = await eventually(async () => {
      const answer = await served.post(`/runs/${awaiting.run_id}`, resume);
      return answer.status === 200 && answer;
    });
    await accepted.body!.cancel();
  });
});

describe("a sync run whose client went away", () => {
  it("is cancelled", async () => {
    const served = await startApp([remembered]);
    seenRunIds.length = 0;
    const client = new AbortController();
    const answer = served
      .request("/runs", {
        ...jsonInit({ agent_name: "remembered", input: [user("ticks=600 ms=50")] }),
        signal: client.signal,
      })
      .catch(() => undefined);
    const runId = await eventually(() => seenRunIds[0]);
    client.abort();
    await answer;
    const run = await eventually(async () => {
      const current = await served.getJson<Run>(`/runs/${runId}`);
      return current.status === "cancelled" && current;
    }, 3000);
    expect(run.status).toBe("cancelled");
  });
});

describe("SSE keep-alive", () => {
  it("sends a comment line on an idle stream", async () => {
    const served = await startApp(testAgents, { sseKeepAliveMs: 50 });
    const running = await createRun(
      served,
      { agent_name: "slow", input: [user("ticks=3 ms=2000")], mode: "async" },
      202,
    );
    const response = await served.request(`/runs/${running.run_id}/events`, {
      headers: { accept: "text/event-stream" },
    });
    const { text, reader } = await readUntil(response, (sofar) => sofar.includes(": keep-alive\n\n"));
    expect(text).toContain(": keep-alive\n\n");
    await reader.cancel();
  });
});

describe("GET /ping", () => {
  it("asks the store at most once a second", async () => {
    const { store, control } = controlledStore();
    const served = await startApp([echo], {}, store);
    control.calls = {};
    await Promise.all(Array.from({ length: 50 }, () => served.request("/ping")));
    for (let index = 0; index < 50; index++) expect((await served.request("/ping")).status).toBe(200);
    expect(control.calls.ping ?? 0).toBeLessThanOrEqual(2);
  });
});

describe("the runtime", () => {
  it("starts on the app's first request of any kind", async () => {
    const store = new MemoryStore();
    const app = createApp([echo], { store, leaseMs: 1000 });
    try {
      expect(await store.isAlive(app.runtime.instanceId)).toBe(false);
      expect((await app.request("/agents")).status).toBe(200);
      await eventually(() => store.isAlive(app.runtime.instanceId));
    } finally {
      await app.shutdown({ deadlineMs: 100 });
    }
  });
});

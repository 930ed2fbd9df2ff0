/**
 * Security through `app.request()`: API keys, CORS, history URLs of other servers (SSRF guard,
 * against a peer server on loopback), limits on input and output, and no internal message or
 * stack trace in any response or SSE frame. The demo's configuration from the environment is
 * tested on real processes in apps/demo/test/security.test.ts.
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryStore } from "@acp/store-memory";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Agent, type AppOptions, agent, createApp, type Message, type Run, type Store } from "../src/index.ts";
import { startApp, stopApps, type TestApp } from "./support/app.ts";

const textOf = (messages: Message[]): string[] =>
  messages.map((message) => message.parts.map((part) => part.content ?? "").join(""));

/** Reports, as JSON text, the messages loadHistory() yields (the earlier runs' messages). */
const historyReport = agent({ name: "history-report" }, async function* (_input, ctx) {
  const seen: Message[] = [];
  for await (const message of ctx.session.loadHistory()) seen.push(message);
  yield JSON.stringify(textOf(seen));
});

/** Yields `n` generic events, n taken from the input text. */
const chatty = agent({ name: "chatty" }, async function* (input) {
  const n = Number(textOf(input)[0]);
  for (let i = 0; i < n; i++) yield { i };
});

let leakyCalls = 0;
/** Throws an error whose message must never reach a client. */
const leaky = agent({ name: "leaky" }, async function* () {
  leakyCalls += 1;
  yield "working";
  throw new Error("secret-xyz");
});

/** Asks for a resume, then answers. */
const asking = agent({ name: "asking" }, async function* () {
  yield { type: "message", message: { parts: [{ content: "go on?" }] } };
  yield "done";
});

/** Waits until cancelled (or 30 s), then ends. */
const waiting = agent({ name: "waiting" }, async function* (_input, ctx) {
  yield "started";
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    ctx.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
});

const agents: Agent[] = [historyReport, chatty, leaky, asking, waiting];

function start(app: Omit<AppOptions, "store"> = {}, store: Store = new MemoryStore()): Promise<TestApp> {
  return startApp(agents, app, store);
}

afterAll(async () => {
  await stopApps(200);
});

const user = (content: string) => ({ role: "user", parts: [{ content }] });

/** A JSON POST as fetch() sends it (no Content-Length: the app takes the body as it comes). */
async function post(
  served: TestApp,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return served.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

async function runSync(served: TestApp, body: Record<string, unknown>): Promise<Run> {
  const response = await post(served, "/runs", { mode: "sync", ...body });
  expect(response.status).toBe(200);
  return (await response.json()) as Run;
}

/** What the history-report agent saw (never the run's own input). */
async function historySeen(served: TestApp, history: string[]): Promise<string[]> {
  const run = await runSync(served, {
    agent_name: "history-report",
    input: [user("now")],
    session: { id: randomUUID(), history },
  });
  expect(run.status).toBe("completed");
  return JSON.parse(run.output[0]!.parts[0]!.content!) as string[];
}

/** A peer ACP server stand-in on loopback that counts the requests it gets, per path. */
interface Peer {
  origin: string;
  hits(path?: string): number;
  close(): Promise<void>;
}

async function startPeer(): Promise<Peer> {
  const hits = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    const where = new URL(request.url ?? "/", "http://peer").pathname;
    hits.set(where, (hits.get(where) ?? 0) + 1);
    if (where === "/message")
      return void response
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify(user("from the peer")));
    if (where === "/big") return void response.writeHead(200).end(JSON.stringify(user("x".repeat(4096))));
    if (where === "/redirect") return void response.writeHead(302, { location: "/message" }).end();
    if (where === "/slow") return; // never answers
    response.writeHead(404).end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: (where) => (where === undefined ? [...hits.values()].reduce((sum, n) => sum + n, 0) : (hits.get(where) ?? 0)),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

describe("API-key authentication", () => {
  let served: TestApp;
  beforeAll(async () => {
    served = await start({ auth: { apiKeys: ["first-key", "second-key"] } });
  });

  it("answers 401 with an ACP error and WWW-Authenticate without a valid key, on every route", async () => {
    const requests = [
      () => served.request("/agents"),
      () => served.request("/agents/chatty", { headers: { authorization: "Bearer wrong-key" } }),
      () => post(served, "/runs", { agent_name: "chatty", input: [user("1")] }, { "x-api-key": "first-keyx" }),
      () => served.request(`/runs/${randomUUID()}/events`, { headers: { accept: "text/event-stream" } }),
      () => served.request(`/sessions/${randomUUID()}`),
      () => served.request(`/resources/${randomUUID()}`),
    ];
    for (const request of requests) {
      const response = await request();
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe("Bearer");
      expect(await response.json()).toEqual({ code: "invalid_input", message: "Missing or invalid API key" });
    }
  });

  it("accepts each key as a bearer token or as X-API-Key", async () => {
    expect((await served.request("/agents", { headers: { authorization: "Bearer first-key" } })).status).toBe(200);
    const response = await post(
      served,
      "/runs",
      { agent_name: "chatty", input: [user("1")] },
      { "x-api-key": "second-key" },
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as Run).status).toBe("completed");
  });

  it("leaves /ping open for load balancers", async () => {
    expect((await served.request("/ping")).status).toBe(200);
  });

  it("leaves /ping open, and nothing else, also when the app is mounted under a prefix", async () => {
    const store = new MemoryStore();
    const outer = new Hono();
    outer.route("/acp", createApp(agents, { store, auth: { apiKeys: ["first-key"] } }));
    try {
      expect((await outer.request("/acp/ping")).status).toBe(200);
      expect((await outer.request("/acp/ping", { method: "HEAD" })).status).toBe(200);
      expect((await outer.request("/acp/agents")).status).toBe(401);
      expect((await outer.request("/acp/agents", { headers: { authorization: "Bearer first-key" } })).status).toBe(200);
    } finally {
      await store.close();
    }
  });

  it("refuses to build an app with no key or an empty key", () => {
    const store = new MemoryStore();
    expect(() => createApp(agents, { store, auth: { apiKeys: [] } })).toThrow(/auth.apiKeys/);
    expect(() => createApp(agents, { store, auth: { apiKeys: ["ok", ""] } })).toThrow(/auth.apiKeys\[1\]/);
  });
});

describe("CORS", () => {
  it("is off by default: no CORS headers", async () => {
    const served = await start();
    const response = await served.request("/agents", { headers: { origin: "https://app.example.com" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("answers preflights before authentication and exposes Run-ID to allowed origins", async () => {
    const served = await start({ cors: { origins: ["https://app.example.com"] }, auth: { apiKeys: ["k"] } });
    const preflight = await served.request("/runs", {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-api-key",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const created = await post(
      served,
      "/runs",
      { agent_name: "chatty", input: [user("1")] },
      { origin: "https://app.example.com", "x-api-key": "k" },
    );
    expect(created.status).toBe(200);
    expect(created.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(created.headers.get("access-control-expose-headers")).toBe("Run-ID,ACP-Instance");
    expect(created.headers.get("run-id")).toBeTruthy();
    const refused = await served.request("/agents", { headers: { origin: "https://evil.example" } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("session history URLs of other servers", () => {
  let peer: Peer;
  let other: Peer;
  const warnings: string[] = [];

  beforeAll(async () => {
    [peer, other] = await Promise.all([startPeer(), startPeer()]);
    vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void warnings.push(args.join(" ")));
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await Promise.all([peer.close(), other.close()]);
  });
  afterEach(() => {
    warnings.length = 0;
  });

  it("reads items of this deployment from the store, with no HTTP request", async () => {
    const served = await start();
    const first = await runSync(served, { agent_name: "chatty", input: [user("0")] });
    const session = (await (await served.request(`/sessions/${first.session_id}`)).json()) as { history: string[] };
    expect(session.history).toHaveLength(1);
    // The deployment itself is on loopback: were the URL fetched, it would be refused.
    expect(await historySeen(served, session.history)).toEqual(["0"]);
    expect(warnings).toEqual([]);
  });

  it("loads nothing from another server by default, and sends it no request", async () => {
    const served = await start();
    expect(await historySeen(served, [`${peer.origin}/message`])).toEqual([]);
    expect(peer.hits()).toBe(0);
    expect(warnings.join("\n")).toContain("not in history.allowedOrigins");
  });

  it("refuses an allowed origin on loopback unless private networks are allowed", async () => {
    const served = await start({ history: { allowedOrigins: [peer.origin] } });
    expect(await historySeen(served, [`${peer.origin}/message`])).toEqual([]);
    expect(peer.hits()).toBe(0);
    expect(warnings.join("\n")).toContain("loopback, link-local or private");
  });

  it("loads the message of an allowed origin when private networks are allowed, and never asks a disallowed one", async () => {
    const served = await start({ history: { allowedOrigins: [peer.origin], allowPrivateNetworks: true } });
    expect(
      await historySeen(served, [`${peer.origin}/message`, `${other.origin}/message`, `${peer.origin}/message`]),
    ).toEqual(["from the peer"]); // a URL given twice is loaded once
    expect(peer.hits("/message")).toBe(1);
    expect(other.hits()).toBe(0);
  });

  it("leaves out an oversize body, a server that does not answer and a redirect; the run goes on", async () => {
    const served = await start({
      history: { allowedOrigins: [peer.origin], allowPrivateNetworks: true, maxBytes: 1024, timeoutMs: 300 },
    });
    const before = peer.hits("/message");
    const seen = await historySeen(served, [
      `${peer.origin}/big`,
      `${peer.origin}/slow`,
      `${peer.origin}/redirect`,
      `${peer.origin}/message`,
    ]);
    expect(seen).toEqual(["from the peer"]);
    expect(peer.hits("/message")).toBe(before + 1); // the redirect's target was not requested
    const log = warnings.join("\n");
    expect(log).toContain("larger than 1024 bytes");
    expect(log).toContain("did not answer within 300 ms");
    expect(log).toContain("redirects are not followed");
  });

  it("logs refused URLs without their credentials or query", async () => {
    const served = await start();
    const port = new URL(peer.origin).port;
    await historySeen(served, [`http://admin:hunter2@127.0.0.1:${port}/message?token=t0ken`]);
    expect(warnings.join("\n")).toContain(`${peer.origin}/message`);
    expect(warnings.join("\n")).not.toMatch(/hunter2|t0ken/);
  });
});

describe("limits", () => {
  let served: TestApp;
  beforeAll(async () => {
    served = await start({ limits: { maxInputMessages: 3, maxPartsPerMessage: 2, maxEventsPerRun: 50 } });
  });

  it("refuses an input with too many messages before the run exists", async () => {
    const calls = leakyCalls;
    const response = await post(served, "/runs", {
      agent_name: "leaky",
      input: [user("1"), user("2"), user("3"), user("4")],
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { code: string; message: string; data: Record<string, unknown> };
    expect(body).toMatchObject({ code: "invalid_input", data: { limit: "maxInputMessages", max: 3, actual: 4 } });
    expect(body.message).toContain("limit of 3 messages");
    expect(response.headers.get("run-id")).toBeNull();
    expect(leakyCalls).toBe(calls);
  });

  it("refuses a message with too many parts, in a run input and in a resume", async () => {
    const parts = [{ content: "a" }, { content: "b" }, { content: "c" }];
    const created = await post(served, "/runs", { agent_name: "chatty", input: [user("1"), { role: "user", parts }] });
    expect(created.status).toBe(422);
    expect(((await created.json()) as { message: string }).message).toContain("input[1] has 3 parts");
    const awaiting = await runSync(served, { agent_name: "asking", input: [user("start")] });
    expect(awaiting.status).toBe("awaiting");
    const resumed = await post(served, `/runs/${awaiting.run_id}`, {
      await_resume: { type: "message", message: { role: "user", parts } },
      mode: "sync",
    });
    expect(resumed.status).toBe(422);
    expect(((await resumed.json()) as { message: string }).message).toContain("maxPartsPerMessage");
  });

  it("fails a run whose agent produces more events than allowed", async () => {
    const run = await runSync(served, { agent_name: "chatty", input: [user("1000")] });
    expect(run.status).toBe("failed");
    expect(run.error).toEqual({ code: "server_error", message: "The run exceeded the limit of 50 events" });
    const events = (await (await served.request(`/runs/${run.run_id}/events`)).json()) as { events: unknown[] };
    expect(events.events.length).toBeLessThanOrEqual(50 + 3);
    expect((await runSync(served, { agent_name: "chatty", input: [user("50")] })).status).toBe("completed");
  });

  it("refuses to build an app with a limit below 1", () => {
    expect(() => createApp(agents, { store: new MemoryStore(), limits: { maxEventsPerRun: 0 } })).toThrow(
      /limits.maxEventsPerRun/,
    );
  });
});

describe("no internal message or stack trace reaches a client", () => {
  const STACK = /\n\s+at\s|\.ts:\d+|node_modules/;
  const errors = vi.fn();

  beforeAll(() => {
    // The server logs what failed (as it should); keep the test output readable.
    vi.spyOn(console, "error").mockImplementation(errors);
  });
  afterAll(() => {
    vi.restoreAllMocks();
  });

  it("maps an agent's plain Error to a generic run error, in JSON and in SSE", async () => {
    const served = await start();
    const run = await runSync(served, { agent_name: "leaky", input: [user("go")] });
    expect(run.status).toBe("failed");
    expect(run.error).toEqual({ code: "server_error", message: "The agent failed with an internal error" });
    const bodies = [
      JSON.stringify(run),
      await (await served.request(`/runs/${run.run_id}`)).text(),
      await (await served.request(`/runs/${run.run_id}/events`)).text(),
      await (await served.request(`/runs/${run.run_id}/events`, { headers: { accept: "text/event-stream" } })).text(),
      await (await post(served, "/runs", { agent_name: "leaky", input: [user("go")], mode: "stream" })).text(),
    ];
    for (const body of bodies) {
      expect(body).not.toContain("secret-xyz");
      expect(body).not.toMatch(STACK);
    }
  });

  it("answers a store failure with a generic 503, and ends an open SSE stream with a generic error event", async () => {
    let broken = false;
    const memory = new MemoryStore();
    const store = new Proxy(memory, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== "function") return value;
        if (property === "close") return value.bind(target);
        return (...args: unknown[]) =>
          broken
            ? Promise.reject(new Error("secret-xyz: cannot reach db://admin:secret-xyz@db"))
            : (value as (...a: unknown[]) => unknown).apply(target, args);
      },
    });
    const served = await start({ outageMs: 100, storeTimeoutMs: 500 }, store);
    const created = await post(served, "/runs", { agent_name: "waiting", input: [user("go")], mode: "async" });
    const { run_id } = (await created.json()) as Run;
    const stream = await served.request(`/runs/${run_id}/events`, { headers: { accept: "text/event-stream" } });
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let frames = "";
    while (!frames.includes("message.part")) frames += decoder.decode((await reader.read()).value, { stream: true });
    broken = true;
    const responses = [
      await served.request(`/runs/${run_id}`),
      await post(served, "/runs", { agent_name: "chatty", input: [user("1")] }),
      await post(served, `/runs/${run_id}/cancel`, {}),
      await served.request(`/sessions/${randomUUID()}`),
    ];
    const bodies: string[] = [];
    for (const response of responses) {
      expect(response.status).toBe(503);
      bodies.push(await response.text());
      expect(JSON.parse(bodies.at(-1)!)).toMatchObject({ code: "server_error" });
    }
    // The stream notices the broken store on its next read (a wake-up or its safety poll). A write
    // past the broken client (as another instance's) wakes it now rather than in 10 s.
    await memory.appendEvents(run_id, [{ type: "generic", generic: { wake: "up" } }]);
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      frames += decoder.decode(chunk.value, { stream: true });
      if (frames.includes('"type":"error"')) break;
    }
    await reader.cancel().catch(() => {});
    broken = false;
    expect(frames).toContain('"type":"error"');
    for (const body of [...bodies, frames]) {
      expect(body).not.toContain("secret-xyz");
      expect(body).not.toMatch(STACK);
    }
  });
});

/**
 * Property-based test of every endpoint with fast-check: thousands of generated requests, valid
 * and not, against one demo server over a given store. Each answer is below 500 and is either a
 * valid response of its route or an ACP error body; no request hangs (each has a deadline); no run
 * is left going; and the instance serves normally afterwards. A failure prints the shrunk request
 * and the seed to replay it with (`FUZZ_SEED=<seed>`).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoAgents } from "../../src/agents.ts";
import { type DemoServer, startServer } from "../../src/server.ts";
import { type ChosenStore, storeFromEnv } from "../../src/store-from-env.ts";
import type { Backend } from "../ha/backends.ts";
import { expectAcpAnswer } from "./acp-answer.ts";
import {
  contentType,
  echoRunBody,
  mutated,
  oddSegment,
  queryString,
  type RawBody,
  randomBody,
  resumeBody,
  tokensRunBody,
} from "./fuzz-arbitraries.ts";

/** Requests per endpoint group at scale 1: about 2,100 in all, 10 to 30 seconds on two busy cores. */
const NUM_RUNS = { createRun: 800, resume: 300, cancel: 200, read: 800 };
/** A request still unanswered after this has hung: the property fails. */
const REQUEST_TIMEOUT_MS = 10_000;
const PROPERTY_TIMEOUT_MS = 120_000;
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** A store for one fuzz run, and how to remove what it wrote. */
export interface OpenedStore {
  chosen: ChosenStore;
  cleanup(): Promise<void>;
}

/**
 * The fuzz tests against a demo server over the store `open` makes. `scale` sizes the number of
 * requests (1: about 2,100), so that slower backends can run fewer.
 */
export function describeFuzz(name: string, open: () => Promise<OpenedStore>, scale = 1): void {
  const settings = (numRuns: number): fc.Parameters<unknown> => ({
    numRuns: Math.max(20, Math.round(numRuns * scale)),
    ...(seed === undefined ? {} : { seed }),
  });

  let demo: DemoServer;
  let opened: OpenedStore | undefined;
  let finishedRunId = "";
  let sessionId = "";
  let resourceId = "";
  /** Approval runs waiting for a resume; one that a resume moved on is replaced by a fresh one. */
  const awaiting: string[] = [];
  /** Every run that a fuzzed request started. */
  const started = new Set<string>();

  const json = { "content-type": "application/json" };
  const user = (content: string) => ({ role: "user", parts: [{ content }] });

  async function startAwaiting(): Promise<string> {
    const response = await fetch(`${demo.url}/runs`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ agent_name: "approval", input: [user("the fuzz")] }),
    });
    const run = (await response.json()) as { run_id: string; status: string };
    expect(run.status).toBe("awaiting");
    return run.run_id;
  }

  /** Replaces `runId` in the pool by a fresh awaiting run if a request moved it on (a resume or cancel that went through). */
  async function keepAwaiting(runId: string): Promise<void> {
    const run = (await (await fetch(`${demo.url}/runs/${runId}`)).json()) as { status: string };
    if (run.status !== "awaiting") awaiting[awaiting.indexOf(runId)] = await startAwaiting();
  }

  beforeAll(async () => {
    opened = await open();
    demo = await startServer(demoAgents, opened.chosen, { port: 0, host: "127.0.0.1", drainMs: 500 });
    const response = await fetch(`${demo.url}/runs`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ agent_name: "echo", input: [user("hi")] }),
    });
    const run = (await response.json()) as { run_id: string; session_id: string };
    finishedRunId = run.run_id;
    sessionId = run.session_id;
    const session = (await (await fetch(`${demo.url}/sessions/${sessionId}`)).json()) as { history: string[] };
    resourceId = new URL(session.history[0]!).pathname.split("/").pop()!;
    for (let i = 0; i < 4; i++) awaiting.push(await startAwaiting());
  });

  afterAll(async () => {
    if (demo) for (const runId of awaiting) await fetch(`${demo.url}/runs/${runId}/cancel`, { method: "POST" });
    await demo?.stop();
    await opened?.cleanup();
  });

  interface Probe {
    method: string;
    path: string;
    body?: RawBody;
    /** `undefined` sends no Content-Type. */
    contentType?: string | undefined;
    headers?: Record<string, string>;
  }

  /** Sends `probe`, checks the answer to its end and returns the response's headers. */
  async function send(probe: Probe): Promise<Headers> {
    const url = `${demo.url}${probe.path}`;
    const headers: Record<string, string> = { ...probe.headers };
    if (probe.contentType !== undefined) headers["content-type"] = probe.contentType;
    // Bytes, so that fetch adds no Content-Type of its own.
    const body =
      probe.body === undefined ? undefined : "text" in probe.body ? Buffer.from(probe.body.text) : probe.body.bytes;
    const response = await fetch(url, {
      method: probe.method,
      headers,
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    await expectAcpAnswer(probe.method, url, response);
    return response.headers;
  }

  const asText = (value: unknown): RawBody => ({ text: JSON.stringify(value) ?? "" });

  /** The id of a run picked at run time from a pool: fast-check values are made before the runs exist. */
  const pick = (pool: readonly string[], index: number): string | undefined =>
    pool.length === 0 ? undefined : pool[index % pool.length];

  const TERMINAL = ["completed", "failed", "cancelled"];

  /** A run's status once it is terminal, or its last status after a few seconds: async runs may still be finishing. */
  async function settledStatus(runId: string): Promise<string> {
    let status = "";
    for (let attempt = 0; attempt < 100; attempt++) {
      status = ((await (await fetch(`${demo.url}/runs/${runId}`)).json()) as { status: string }).status;
      if (TERMINAL.includes(status)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return status;
  }

  describe(`fuzzing every endpoint (${name} store)`, () => {
    it(
      "answers POST /runs in every mode with a run, a stream or an ACP error",
      async () => {
        const body = fc.oneof(
          { arbitrary: echoRunBody.map(asText), weight: 3 },
          { arbitrary: tokensRunBody.map(asText), weight: 1 },
          { arbitrary: mutated(echoRunBody).map(asText), weight: 4 },
          { arbitrary: randomBody, weight: 2 },
        );
        await fc.assert(
          fc.asyncProperty(body, contentType, async (raw, type) => {
            const headers = await send({ method: "POST", path: "/runs", body: raw, contentType: type });
            const runId = headers.get("run-id");
            if (runId) started.add(runId);
          }),
          settings(NUM_RUNS.createRun),
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it(
      "answers resumes of awaiting, finished, unknown and malformed run ids",
      async () => {
        const target = fc.oneof(
          { arbitrary: fc.nat().map((index) => ({ awaiting: index })), weight: 3 },
          { arbitrary: fc.constant({ finished: true }), weight: 1 },
          { arbitrary: fc.uuid().map((id) => ({ segment: id })), weight: 1 },
          { arbitrary: oddSegment.map((segment) => ({ segment })), weight: 1 },
        );
        const body = fc.oneof(
          { arbitrary: resumeBody.map(asText), weight: 3 },
          { arbitrary: mutated(resumeBody).map(asText), weight: 3 },
          { arbitrary: randomBody, weight: 1 },
        );
        await fc.assert(
          fc.asyncProperty(target, body, contentType, async (to, raw, type) => {
            const awaitingId = "awaiting" in to ? pick(awaiting, to.awaiting) : undefined;
            const segment =
              awaitingId ?? ("finished" in to ? finishedRunId : "segment" in to ? to.segment : finishedRunId);
            await send({ method: "POST", path: `/runs/${segment}`, body: raw, contentType: type });
            if (awaitingId) await keepAwaiting(awaitingId);
          }),
          settings(NUM_RUNS.resume),
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it(
      "answers cancels of started, finished, unknown and malformed run ids",
      async () => {
        const target = fc.oneof(
          { arbitrary: fc.nat().map((index) => ({ started: index })), weight: 3 },
          { arbitrary: fc.nat().map((index) => ({ awaiting: index })), weight: 1 },
          { arbitrary: fc.uuid().map((id) => ({ segment: id })), weight: 1 },
          { arbitrary: oddSegment.map((segment) => ({ segment })), weight: 1 },
        );
        await fc.assert(
          fc.asyncProperty(target, fc.option(randomBody), contentType, async (to, raw, type) => {
            const awaitingId = "awaiting" in to ? pick(awaiting, to.awaiting) : undefined;
            const segment =
              awaitingId ??
              ("started" in to
                ? (pick([...started], to.started) ?? finishedRunId)
                : "segment" in to
                  ? to.segment
                  : finishedRunId);
            await send({
              method: "POST",
              path: `/runs/${segment}/cancel`,
              ...(raw === null ? {} : { body: raw, contentType: type }),
            });
            if (awaitingId) await keepAwaiting(awaitingId);
          }),
          settings(NUM_RUNS.cancel),
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it(
      "answers reads of every route with random path segments, query strings and headers",
      async () => {
        const runSegment = fc.oneof(
          fc.constant("{finished}"),
          fc.nat().map((index) => `{started:${index}}`),
          fc.uuid(),
          oddSegment,
        );
        const path = fc.oneof(
          fc.constant("/ping"),
          queryString.map((query) => `/agents${query ? `?${query}` : ""}`),
          fc.oneof(fc.constantFrom("echo", "tokens", "slow"), oddSegment).map((name) => `/agents/${name}`),
          runSegment.map((segment) => `/runs/${segment}`),
          fc.nat().map((index) => `/runs/{awaiting:${index}}`),
          runSegment.map((segment) => `/runs/${segment}/events`),
          fc
            .tuple(fc.constantFrom("sessions", "session"), fc.oneof(fc.constant("{session}"), fc.uuid(), oddSegment))
            .map(([route, segment]) => `/${route}/${segment}`),
          fc.oneof(fc.constant("{resource}"), fc.uuid(), oddSegment).map((segment) => `/resources/${segment}`),
          fc.tuple(fc.webPath(), queryString).map(([webPath, query]) => `${webPath || "/"}${query ? `?${query}` : ""}`),
        );
        const headers = fc.record(
          {
            accept: fc.oneof(
              { arbitrary: fc.constant("text/event-stream"), weight: 3 },
              fc.constantFrom("application/json", "*/*", "text/html"),
            ),
            "last-event-id": fc.oneof(
              fc.nat(50).map(String),
              fc.constantFrom("-1", "1.5", "", "1e3", "abc", "99999999999999999999"),
              fc.string({ unit: "grapheme-ascii", maxLength: 8 }),
            ),
          },
          { requiredKeys: [] },
        );
        const method = fc.oneof(
          { arbitrary: fc.constant("GET"), weight: 8 },
          { arbitrary: fc.constantFrom("PUT", "DELETE", "PATCH", "OPTIONS"), weight: 1 },
        );
        await fc.assert(
          fc.asyncProperty(method, path, headers, async (verb, template, extra) => {
            const resolved = template
              .replace("{finished}", finishedRunId)
              .replace("{session}", sessionId)
              .replace("{resource}", resourceId)
              .replace(/\{started:(\d+)\}/, (_, index: string) => pick([...started], Number(index)) ?? finishedRunId)
              .replace(/\{awaiting:(\d+)\}/, (_, index: string) => pick(awaiting, Number(index)) ?? finishedRunId);
            await send({ method: verb, path: resolved, headers: extra });
          }),
          settings(NUM_RUNS.read),
        );
      },
      PROPERTY_TIMEOUT_MS,
    );

    it("leaves no started run going, and serves normally afterwards", async () => {
      const going: string[] = [];
      for (const runId of started) {
        const status = await settledStatus(runId);
        if (!TERMINAL.includes(status)) going.push(`${runId} (${status})`);
      }
      expect(going).toEqual([]);
      expect((await fetch(`${demo.url}/ping`)).status).toBe(200);
      const response = await fetch(`${demo.url}/runs`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ agent_name: "echo", input: [user("still here")] }),
      });
      const run = (await response.json()) as { status: string; output: { parts: { content: string }[] }[] };
      expect(run.status).toBe("completed");
      expect(run.output[0]?.parts[0]?.content).toBe("still here");
    });
  });
}

/** The suite on a shared backend of the HA tests (Redis or PostgreSQL), in a namespace of its own. */
export function describeFuzzOn(makeBackend: () => Backend, scale: number): void {
  const backend = makeBackend();
  describeFuzz(
    backend.name,
    async () => ({ chosen: await storeFromEnv(backend.env), cleanup: () => backend.cleanup() }),
    scale,
  );
}

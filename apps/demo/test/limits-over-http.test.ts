/**
 * Limits and request edges over a real socket: an instance limited to 5 concurrent runs answers
 * 20 concurrent slow runs with 5 answers and 15 503s with Retry-After, and stays healthy; a sync
 * run whose client hangs up is cancelled (the request's AbortSignal fires under
 * @hono/node-server); a Last-Event-ID past 2^31 − 1 gets a 4xx, never a 5xx, on every store.
 * Core's fast tests check the same through `app.request()` (packages/core/test/bounded-work.test.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { demoAgents } from "../src/agents.ts";
import { appOptionsFromEnv } from "../src/app-options-from-env.ts";
import { type DemoServer, startServer } from "../src/server.ts";
import { type ChosenStore, storeFromEnv } from "../src/store-from-env.ts";
import { type Backend, postgresBackend, redisBackend } from "./ha/backends.ts";

const servers: DemoServer[] = [];
const backends: Backend[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.stop()));
  await Promise.all(backends.splice(0).map((backend) => backend.cleanup()));
});

const user = (content: string) => ({ role: "user", parts: [{ content }] });

function post(url: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The memory store, with the ids of the runs created through it. */
async function recordingStore(created: string[]): Promise<ChosenStore> {
  const chosen = await storeFromEnv({});
  const inner = chosen.store;
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property === "createRun")
        return (record: { run: { run_id: string } }, events: unknown[]) => {
          created.push(record.run.run_id);
          return (value as (...args: unknown[]) => Promise<boolean>).call(target, record, events);
        };
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...chosen, store };
}

describe("the demo's capacity variables", () => {
  it("sets limits.maxConcurrentRuns and limits.maxStreams from ACP_MAX_CONCURRENT_RUNS and ACP_MAX_STREAMS", () => {
    expect(appOptionsFromEnv({ ACP_MAX_CONCURRENT_RUNS: "5", ACP_MAX_STREAMS: "7" }).options.limits).toEqual({
      maxConcurrentRuns: 5,
      maxStreams: 7,
    });
    expect(appOptionsFromEnv({}).options.limits).toBeUndefined();
    expect(() => appOptionsFromEnv({ ACP_MAX_STREAMS: "many" })).toThrow(/ACP_MAX_STREAMS/);
  });
});

describe("over real HTTP", () => {
  it("answers 20 concurrent slow runs on an instance limited to 5 with 5 runs and 15 503s with Retry-After", async () => {
    const demo = await startServer(demoAgents, await storeFromEnv({}), {
      port: 0,
      host: "127.0.0.1",
      app: { limits: { maxConcurrentRuns: 5 } },
    });
    servers.push(demo);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        post(`${demo.url}/runs`, { agent_name: "tokens", input: [user("delay=100 a b c")] }),
      ),
    );
    const refused = answers.filter((response) => response.status === 503);
    const served = answers.filter((response) => response.status === 200);
    expect([served.length, refused.length]).toEqual([5, 15]);
    for (const response of refused) {
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(((await response.json()) as { code: string }).code).toBe("server_error");
    }
    for (const response of served) expect(((await response.json()) as { status: string }).status).toBe("completed");
    expect((await fetch(`${demo.url}/ping`)).status).toBe(200);
    expect((await post(`${demo.url}/runs`, { agent_name: "echo", input: [user("after")] })).status).toBe(200);
  });

  it("cancels a sync run whose client hung up", async () => {
    const created: string[] = [];
    const demo = await startServer(demoAgents, await recordingStore(created), { port: 0, host: "127.0.0.1" });
    servers.push(demo);
    const client = new AbortController();
    const answer = post(
      `${demo.url}/runs`,
      { agent_name: "tokens", input: [user("delay=100 200 word")] },
      client.signal,
    );
    const runId = await eventually(async () => created[0], 5000);
    client.abort();
    await answer.catch(() => undefined);
    const status = await eventually(async () => {
      const run = (await (await fetch(`${demo.url}/runs/${runId}`)).json()) as { status: string };
      return run.status === "cancelled" && run.status;
    }, 5000);
    expect(status).toBe("cancelled");
    expect(demo.app.runtime.localRuns).toBe(0);
  });

  for (const makeBackend of [redisBackend, postgresBackend]) {
    it(`answers a Last-Event-ID past 2^31 − 1 with a 4xx on ${makeBackend().name}`, async () => {
      const backend = makeBackend();
      backends.push(backend);
      const demo = await startServer(demoAgents, await storeFromEnv(backend.env), { port: 0, host: "127.0.0.1" });
      servers.push(demo);
      const finished = (await (await post(`${demo.url}/runs`, { agent_name: "echo", input: [user("hi")] })).json()) as {
        run_id: string;
      };
      const events = (lastEventId: string) =>
        fetch(`${demo.url}/runs/${finished.run_id}/events`, {
          headers: { accept: "text/event-stream", "last-event-id": lastEventId },
        });
      for (const lastEventId of ["2147483648", "4294967296", "999999999999999"]) {
        const response = await events(lastEventId);
        expect(response.status).toBe(422);
        expect(((await response.json()) as { message: string }).message).toContain("Last-Event-ID");
      }
      // The largest id there can be is a correct 200: the run's log ends before it.
      const largest = await events("2147483647");
      expect(largest.status).toBe(200);
      expect(await largest.text()).toBe("");
    });
  }
});

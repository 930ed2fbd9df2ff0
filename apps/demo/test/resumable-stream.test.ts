/**
 * The SSE extension `GET /runs/{id}/events` with `Accept: text/event-stream`: it follows a run
 * live from `Last-Event-ID`, and always ends once the run has ended, even for a client that
 * asks from past the end of the log.
 */
import { MemoryStore } from "@acp/store-memory";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoAgents } from "../src/agents.ts";
import { type DemoServer, startServer } from "../src/server.ts";

let demo: DemoServer;

beforeAll(async () => {
  const store = new MemoryStore();
  demo = await startServer(
    demoAgents,
    { store, description: "memory", close: async () => store.close?.() },
    { port: 0, host: "127.0.0.1", drainMs: 500 },
  );
});

afterAll(async () => {
  await demo?.stop();
});

async function startRun(text: string): Promise<string> {
  const response = await fetch(`${demo.url}/runs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      agent_name: "tokens",
      input: [{ role: "user", parts: [{ content: text }] }],
      mode: "async",
    }),
  });
  return ((await response.json()) as { run_id: string }).run_id;
}

function follow(runId: string, lastEventId?: number): Promise<string> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
  return fetch(`${demo.url}/runs/${runId}/events`, { headers, signal: AbortSignal.timeout(15_000) }).then((r) =>
    r.text(),
  );
}

describe("resumable event streams", () => {
  it("follows a running run from Last-Event-ID to its terminal event", async () => {
    const runId = await startRun("6 word delay=30");
    const body = await follow(runId, 3);
    const ids = [...body.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
    expect(ids[0]).toBe(4);
    expect(ids).toEqual(ids.map((_, index) => index + 4));
    expect(body).toContain('"type":"run.completed"');
  });

  it("ends, empty, for a client that asks from past the end of a running run once the run ends", async () => {
    const runId = await startRun("5 word delay=30");
    expect(await follow(runId, 9999)).toBe("");
  });

  it("ends at once, empty, for a client that has seen the end of a finished run", async () => {
    const runId = await startRun("2 word");
    const all = await follow(runId);
    const last = Math.max(...[...all.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1])));
    expect(await follow(runId, last)).toBe("");
  });
});

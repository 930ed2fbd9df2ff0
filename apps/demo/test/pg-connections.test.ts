/**
 * PostgreSQL connections do not grow with followers: 200 open event streams on one instance use
 * the query pool plus the one shared LISTEN connection, and every stream still gets its events.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postgresBackend } from "./ha/backends.ts";
import { type Instance, startInstance, stopInstances } from "./support/cluster.ts";

const POOL = 4;
const STREAMS = 200;
const RUNS = 20;
const backend = postgresBackend();
const applicationName = `acp-conn-${randomBytes(3).toString("hex")}`;
const sql = postgres(backend.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
let instance: Instance;

beforeAll(async () => {
  instance = await startInstance({
    ...backend.env,
    POSTGRES_POOL_MAX: String(POOL),
    POSTGRES_APPLICATION_NAME: applicationName,
  });
});

afterAll(async () => {
  await stopInstances([instance].filter(Boolean));
  await sql.end({ timeout: 5 });
  await backend.cleanup();
});

async function connections(): Promise<number> {
  const [row] = await sql<
    { count: number }[]
  >`select count(*)::int as count from pg_stat_activity where application_name = ${applicationName}`;
  return row!.count;
}

/** Reads an SSE body to its end; the event types in order. */
async function drain(response: Response, onFirstAwait: () => void): Promise<string[]> {
  const text: string[] = [];
  const decoder = new TextDecoder();
  const reader = response.body!.getReader();
  let buffer = "";
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    buffer += decoder.decode(chunk.value, { stream: true });
    for (const match of buffer.matchAll(/^data: (.*)$/gm)) {
      const type = (JSON.parse(match[1]!) as { type: string }).type;
      text.push(type);
      if (type === "run.awaiting") onFirstAwait();
    }
    buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 2);
  }
  return text;
}

describe("PostgreSQL connections under many followers", () => {
  it(`stays at pool size + 1 with ${STREAMS} open streams, and every stream gets its events`, async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${instance.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<{ run_id: string; status: string }>);
    const runs = await Promise.all(
      Array.from({ length: RUNS }, (_, i) =>
        post("/runs", { agent_name: "approval", input: [{ role: "user", parts: [{ content: `task ${i}` }] }] }),
      ),
    );
    expect(runs.every((run) => run.status === "awaiting")).toBe(true);

    let caughtUp = 0;
    let allCaughtUp: () => void = () => {};
    const ready = new Promise<void>((resolve) => (allCaughtUp = resolve));
    const streams = Array.from({ length: STREAMS }, (_, i) =>
      fetch(`${instance.url}/runs/${runs[i % RUNS]!.run_id}/events`, { headers: { accept: "text/event-stream" } }).then(
        (response) =>
          drain(response, () => {
            if (++caughtUp === STREAMS) allCaughtUp();
          }),
      ),
    );
    await ready;
    const whileOpen = await connections();
    expect(whileOpen).toBeGreaterThanOrEqual(2);
    expect(whileOpen).toBeLessThanOrEqual(POOL + 1);

    const resumed = await Promise.all(
      runs.map((run) =>
        post(`/runs/${run.run_id}`, {
          await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } },
          mode: "sync",
        }),
      ),
    );
    expect(resumed.every((run) => run.status === "completed")).toBe(true);
    const seen = await Promise.all(streams);
    for (const types of seen) expect(types.slice(-3)).toEqual(["message.part", "message.completed", "run.completed"]);
    expect(await connections()).toBeLessThanOrEqual(POOL + 1);
  }, 60_000);
});

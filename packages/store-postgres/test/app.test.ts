import { agent, createApp } from "@acp/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgreSQLStore } from "../src/index.ts";
import { assertReachable, connect, dropTables, randomName } from "./database.ts";

const sql = connect({ max: 4 });
const table = randomName("acp_test");
const store = new PostgreSQLStore({ sql, table, channel: randomName("acp_test") });
const echo = agent({ name: "echo", description: "Echoes its input" }, async function* (input) {
  for (const message of input) yield message;
});
const app = createApp([echo], { store });

beforeAll(assertReachable);
afterAll(async () => {
  await app.shutdown({ deadlineMs: 1_000 });
  await store.close();
  await dropTables(sql, table);
  await sql.end({ timeout: 5 });
});

describe("PostgreSQLStore under createApp", () => {
  it("runs the README's echo agent and keeps its session history", async () => {
    const sessionId = crypto.randomUUID();
    const input = [{ role: "user", parts: [{ content_type: "text/plain", content: "hello" }] }];
    const response = await app.request("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "echo", session_id: sessionId, input, mode: "sync" }),
    });
    expect(response.status).toBe(200);
    const run = (await response.json()) as {
      run_id: string;
      status: string;
      output: { parts: { content: string }[] }[];
    };
    expect(run.status).toBe("completed");
    expect(run.output[0]?.parts[0]?.content).toBe("hello");
    expect((await store.getRun(run.run_id))?.run.status).toBe("completed");
    expect(await store.getHistory(sessionId)).toHaveLength(2);
  });
});

/**
 * Text PostgreSQL's jsonb refuses (NUL, unpaired surrogates) in an agent's output or error, on the
 * real backends: the run ends within seconds, with U+FFFD in place of that text. Before, on
 * PostgreSQL the refused writes were retried as an outage and the run stayed in progress.
 */
import { ACPError, agent, createApp } from "@acp/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeFromEnv } from "../src/store-from-env.ts";
import { type Backend, postgresBackend, redisBackend } from "./ha/backends.ts";

const odd = agent({ name: "odd" }, async function* () {
  yield "a\u0000b";
  yield " lone \ud800";
  yield { note: "k", "key\u0000": ["\udc00"] };
  yield { parts: [{ content: "whole \u0000" }] };
});

const throwing = agent({ name: "throwing" }, async function* () {
  yield "working";
  throw new ACPError({ code: "invalid_input", message: "bad \u0000 input" });
});

interface Run {
  run_id: string;
  status: string;
  output: { parts: { content?: string }[] }[];
  error: { code: string; message: string } | null;
}

for (const makeBackend of [postgresBackend, redisBackend]) {
  const backend: Backend = makeBackend();
  describe(`output a store cannot hold, on ${backend.name}`, () => {
    let chosen: Awaited<ReturnType<typeof storeFromEnv>>;
    let app: ReturnType<typeof createApp>;

    beforeAll(async () => {
      chosen = await storeFromEnv(backend.env);
      app = createApp([odd, throwing], { store: chosen.store });
    });

    afterAll(async () => {
      await app?.shutdown({ deadlineMs: 0 });
      await chosen?.close();
      await backend.cleanup();
    });

    /** Starts an async run and polls it until it ends (or 10 s pass). */
    async function runToEnd(agentName: string): Promise<{ run: Run; ms: number }> {
      const began = Date.now();
      const created = await app.request("/runs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          agent_name: agentName,
          mode: "async",
          input: [{ role: "user", parts: [{ content: "go" }] }],
        }),
      });
      expect(created.status).toBe(202);
      const { run_id } = (await created.json()) as Run;
      for (;;) {
        const run = (await (await app.request(`/runs/${run_id}`)).json()) as Run;
        if (["completed", "failed", "cancelled"].includes(run.status) || Date.now() - began > 10_000)
          return { run, ms: Date.now() - began };
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    it("ends a run whose output holds NUL and unpaired surrogates, with U+FFFD in their place", async () => {
      const { run, ms } = await runToEnd("odd");
      expect(run.status).toBe("completed");
      expect(ms).toBeLessThan(5_000);
      expect(run.output.map((message) => message.parts.map((part) => part.content).join(""))).toEqual([
        "a\ufffdb lone \ufffd",
        "whole \ufffd",
      ]);
      const events = (await (await app.request(`/runs/${run.run_id}/events`)).json()) as { events: unknown[] };
      expect(events.events).toContainEqual({ type: "generic", generic: { note: "k", "key\ufffd": ["\ufffd"] } });
    });

    it("ends a run whose agent throws an error holding NUL, with U+FFFD in its message", async () => {
      const { run, ms } = await runToEnd("throwing");
      expect(ms).toBeLessThan(5_000);
      expect(run).toMatchObject({ status: "failed", error: { code: "invalid_input", message: "bad \ufffd input" } });
    });
  });
}

/**
 * A store that is slow but reachable: a create that answers after the client was told 503 must
 * not leave a run that nobody executes; a sync run, stored by one write at its end, waits for it. The store here is the real memory store behind a delay.
 */

import type { AddressInfo } from "node:net";
import { createApp, type Store } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echo } from "../src/agents.ts";

const memory = new MemoryStore();
const createdIds: string[] = [];
/** The memory store, but createRun answers after 300 ms. */
const slow: Store = new Proxy(memory, {
  get(target, property, receiver) {
    if (property === "createRun") {
      return async (...args: Parameters<Store["createRun"]>) => {
        createdIds.push(args[0].run.run_id);
        await new Promise((resolve) => setTimeout(resolve, 300));
        return target.createRun(...args);
      };
    }
    const value = Reflect.get(target, property, receiver);
    return typeof value === "function" ? value.bind(target) : value;
  },
});

let server: ServerType;
let url = "";

beforeAll(async () => {
  const app = createApp([echo], { store: slow, storeTimeoutMs: 100 });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await memory.close?.();
});

describe("a slow store", () => {
  it("answers a sync run once its one write, late, has landed", async () => {
    const response = await fetch(`${url}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "hi" }] }] }),
    });
    expect(response.status).toBe(200);
    const run = (await response.json()) as { run_id: string; status: string };
    expect(run.status).toBe("completed");
    expect((await memory.getRun(run.run_id))?.run.status).toBe("completed");
  });

  it("answers 503 when the create of an async run takes too long, and fails the run if it lands later", async () => {
    const response = await fetch(`${url}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        agent_name: "echo",
        input: [{ role: "user", parts: [{ content: "hi" }] }],
        mode: "async",
      }),
    });
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ code: "server_error" });
    const runId = createdIds.at(-1)!;
    let run: { status: string; error?: { message: string } } = { status: "" };
    for (let tries = 0; tries < 100 && run.status !== "failed"; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const answer = await fetch(`${url}/runs/${runId}`);
      if (answer.ok) run = await answer.json();
    }
    expect(run.status).toBe("failed");
    expect(run.error?.message).toContain("could not be started");
  });
});

describe("a slow run end with its session history", () => {
  it("is not written twice when it lands after its timeout", async () => {
    const store = new MemoryStore();
    /** The memory store, but the first update that ends a run (it carries the history) answers after 300 ms, when it has landed. */
    let slowed = false;
    const slowEnd: Store = new Proxy(store, {
      get(target, property, receiver) {
        if (property === "updateRun") {
          return async (...args: Parameters<Store["updateRun"]>) => {
            const landed = target.updateRun(...args);
            if (args[4]?.history !== undefined && !slowed) {
              slowed = true;
              await new Promise((resolve) => setTimeout(resolve, 300));
            }
            return landed;
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const app = createApp([echo], { store: slowEnd, storeTimeoutMs: 100 });
    const response = await app.request("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "once" }] }] }),
    });
    const run = (await response.json()) as { status: string; session_id: string; run_id: string };
    expect(run.status).toBe("completed");
    const history = await store.getHistory(run.session_id);
    expect(history?.map((item) => item.message.role)).toEqual(["user", "agent/echo"]);
    const ends = (await store.readEvents(run.run_id, 0)).filter((stored) => stored.event.type === "run.completed");
    expect(ends).toHaveLength(1);
    await store.close?.();
  });
});

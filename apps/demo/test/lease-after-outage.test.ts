/**
 * A store outage longer than the lease lets every instance's heartbeat lapse at once. Once the
 * store is back, no instance may fail another's runs as orphaned before that one could renew its
 * lease; and a run awaiting input outlasts an outage of any length. Two instances over real HTTP
 * share one memory store, each behind its own switch that makes every call fail like an
 * unreachable backend.
 */
import type { AddressInfo } from "node:net";
import { type ACPApp, createApp, type Store } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { type ServerType, serve } from "@hono/node-server";
import { afterEach, describe, expect, it } from "vitest";
import { approval } from "../src/agents.ts";

interface Switch {
  down: boolean;
}

function behindSwitch(store: Store, state: Switch): Store {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) =>
        state.down
          ? Promise.reject(new Error("connect ECONNREFUSED"))
          : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An instance listening on a loopback port. */
interface Instance {
  app: ACPApp;
  url: string;
}

async function post(
  instance: Instance,
  path: string,
  body: unknown,
): Promise<{ status: number; run: { run_id: string; status: string } }> {
  const response = await fetch(`${instance.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, run: (await response.json()) as { run_id: string; status: string } };
}

const ask = { agent_name: "approval", input: [{ role: "user", parts: [{ content: "the release" }] }] };
const yes = { await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } }, mode: "sync" };

const running: { app: ACPApp; server: ServerType }[] = [];
const stores: MemoryStore[] = [];
afterEach(async () => {
  for (const { app, server } of running.splice(0)) {
    await app.shutdown({ deadlineMs: 100 });
    await new Promise((resolve) => server.close(resolve));
  }
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

async function instance(
  store: Store,
  state: Switch,
  options: { leaseMs?: number; outageMs?: number } = {},
): Promise<Instance> {
  const app = createApp([approval], { store: behindSwitch(store, state), storeTimeoutMs: 100, ...options });
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(started));
  });
  running.push({ app, server });
  return { app, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("after a store outage longer than the lease", () => {
  it("gives every instance a lease to renew before sweeping its runs as orphans", async () => {
    const store = new MemoryStore();
    stores.push(store);
    const [a, b] = [{ down: false }, { down: false }];
    const owner = await instance(store, a, { leaseMs: 1000 });
    const peer = await instance(store, b, { leaseMs: 1000 });
    await peer.app.runtime.start();
    const waiting = await post(owner, "/runs", ask);
    expect(waiting.run.status).toBe("awaiting");

    // Both lose the store for longer than the lease; the peer gets it back first.
    a.down = b.down = true;
    await sleep(1500);
    b.down = false;
    await sleep(300);
    a.down = false;
    // Long enough for the peer's sweep (every 500 ms) to have run several times.
    await sleep(1700);

    const read = await fetch(`${peer.url}/runs/${waiting.run.run_id}`);
    expect(((await read.json()) as { status: string }).status).toBe("awaiting");
    const resumed = await post(peer, `/runs/${waiting.run.run_id}`, yes);
    expect(resumed.run.status).toBe("completed");
  }, 15_000);

  it("keeps a run awaiting input through an outage longer than outageMs, and resumes it after", async () => {
    const store = new MemoryStore();
    stores.push(store);
    const [a, b] = [{ down: false }, { down: false }];
    const owner = await instance(store, a, { outageMs: 200 });
    const peer = await instance(store, b);
    const waiting = await post(owner, "/runs", ask);
    expect(waiting.run.status).toBe("awaiting");

    // The owner loses the store; the resume arrives through the peer meanwhile, and the owner
    // only hears of it when the store answers it again, well past its outageMs.
    a.down = true;
    const resumed = post(peer, `/runs/${waiting.run.run_id}`, yes);
    await sleep(1000);
    a.down = false;
    expect((await resumed).run.status).toBe("completed");
  }, 15_000);
});

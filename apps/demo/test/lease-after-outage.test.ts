/**
 * A store outage longer than the lease lets every instance's heartbeat lapse at once. Once the
 * store is back, no instance may fail another's runs as orphaned before that one could renew its
 * lease; and a run awaiting input outlasts an outage of any length. In process: two apps over one
 * memory store, each behind its own switch that makes every call fail like an unreachable backend.
 */
import { createApp, type ACPApp, type Store } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
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
      return (...args: unknown[]) => (state.down ? Promise.reject(new Error("connect ECONNREFUSED")) : (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(app: ACPApp, path: string, body: unknown): Promise<{ status: number; run: { run_id: string; status: string } }> {
  const response = await app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, run: (await response.json()) as { run_id: string; status: string } };
}

const ask = { agent_name: "approval", input: [{ role: "user", parts: [{ content: "the release" }] }] };
const yes = { await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } }, mode: "sync" };

const apps: ACPApp[] = [];
const stores: MemoryStore[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.shutdown({ deadlineMs: 100 })));
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

function instance(store: Store, state: Switch, options: { leaseMs?: number; outageMs?: number } = {}): ACPApp {
  const app = createApp([approval], { store: behindSwitch(store, state), storeTimeoutMs: 100, ...options });
  apps.push(app);
  return app;
}

describe("after a store outage longer than the lease", () => {
  it("gives every instance a lease to renew before sweeping its runs as orphans", async () => {
    const store = new MemoryStore();
    stores.push(store);
    const [a, b] = [{ down: false }, { down: false }];
    const owner = instance(store, a, { leaseMs: 1000 });
    const peer = instance(store, b, { leaseMs: 1000 });
    await peer.runtime.start();
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

    const read = await peer.request(`/runs/${waiting.run.run_id}`);
    expect(((await read.json()) as { status: string }).status).toBe("awaiting");
    const resumed = await post(peer, `/runs/${waiting.run.run_id}`, yes);
    expect(resumed.run.status).toBe("completed");
  }, 15_000);

  it("keeps a run awaiting input through an outage longer than outageMs, and resumes it after", async () => {
    const store = new MemoryStore();
    stores.push(store);
    const [a, b] = [{ down: false }, { down: false }];
    const owner = instance(store, a, { outageMs: 200 });
    const peer = instance(store, b);
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

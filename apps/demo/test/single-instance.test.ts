/** The whole client suite against one instance on the memory store, over real HTTP. */
import { MemoryStore } from "@acp/store-memory";
import { afterAll, beforeAll } from "vitest";
import { demoAgents } from "../src/agents.ts";
import { type DemoServer, startServer } from "../src/server.ts";
import { describeClientSuite } from "./client-suite.ts";

let demo: DemoServer;

beforeAll(async () => {
  const store = new MemoryStore();
  demo = await startServer(
    demoAgents,
    { store, description: "memory", close: async () => store.close?.() },
    { port: 0, host: "127.0.0.1", drainMs: 1000 },
  );
});

afterAll(async () => {
  await demo?.stop();
});

describeClientSuite("one instance, memory store", () => demo.url);

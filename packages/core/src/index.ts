/**
 * `@acp/core`: an Agent Communication Protocol (ACP 0.2) server for TypeScript, built to run as
 * several instances behind a load balancer over a shared {@link Store}.
 * @example
 * import { agent, createApp } from "@acp/core";
 * import { MemoryStore } from "@acp/store-memory";
 * import { serve } from "@hono/node-server";
 *
 * const echo = agent({ name: "echo", description: "Echoes its input" },
 *   async function* (input) { for (const message of input) yield message; });
 * serve({ fetch: createApp([echo], { store: new MemoryStore() }).fetch, port: 8000 });
 * @module
 */
export { agent } from "./agent.ts";
export type {
  Agent,
  AgentGenerator,
  AgentHandler,
  AgentOptions,
  AwaitRequestInput,
  Context,
  MessageInput,
  PartInput,
  SessionHandle,
  Yielded,
} from "./agent.ts";
export { ACPError, type ACPErrorInit } from "./errors.ts";
export { createApp, type ACPApp, type AppOptions } from "./http/app.ts";
export { apiKeyAuth, type AuthOptions } from "./http/auth.ts";
export { acpCors, type CorsOptions } from "./http/cors.ts";
export { createHistoryFetcher, HistoryFetchError, type HistoryFetcher, type HistoryOptions } from "./history-fetch.ts";
export type { LimitOptions } from "./limits.ts";
export { Runtime, type RuntimeOptions } from "./run/runtime.ts";
export * from "./models.ts";
export * from "./store.ts";

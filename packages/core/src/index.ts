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
 *
 * The valibot schemas of the ACP models are in `@acp/core/models`; the conformance suite for
 * store authors is in `@acp/core/testing`.
 * @module
 */
// Everything public is listed by name: a new export is a decision, not an accident.

export type {
  Agent,
  AgentContext,
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
// Agents
export { agent } from "./agent.ts";
export { ACPError, type ACPErrorInit } from "./errors.ts";
export {
  createHistoryFetcher,
  HISTORY_DEFAULTS,
  HistoryFetchError,
  type HistoryFetcher,
  type HistoryOptions,
} from "./history-fetch.ts";
// The HTTP app and the runtime under it
export { type ACPApp, APP_DEFAULTS, type AppOptions, createApp, INSTANCE_HEADER } from "./http/app.ts";
export { type AuthOptions, apiKeyAuth, type NamedApiKey } from "./http/auth.ts";
export { acpCors, type CorsOptions } from "./http/cors.ts";
export { requestTenant, TENANT_VARIABLE } from "./http/tenant.ts";
export { LIMIT_DEFAULTS, type LimitOptions } from "./limits.ts";
// Logging
export { consoleLogger, type Logger, type LogMethod } from "./logger.ts";
// Metrics: the option, and the family and label names dashboards rely on
export { LABEL, METRIC, type MetricsOption } from "./metrics/index.ts";
export type {
  AgentManifest,
  AwaitRequest,
  AwaitResume,
  ErrorCode,
  ErrorModel,
  Event,
  Message,
  MessagePart,
  Metadata,
  Run,
  RunCreateRequest,
  RunEventType,
  RunMode,
  RunResumeRequest,
  RunStatus,
  Session,
} from "./models.ts";

// ACP models: the types, and the helpers code needs (the schemas are in @acp/core/models)
export { isSettled, isTerminal } from "./models.ts";
export { RUNTIME_DEFAULTS, Runtime, type RuntimeOptions, type ShutdownOptions } from "./run/runtime.ts";
export type {
  ChangeKind,
  ChangeListener,
  CreateOptions,
  DurableState,
  HistoryAppend,
  HistoryItem,
  RunHead,
  RunTraceContext,
  SessionSummary,
  StepRecord,
  Store,
  StoredEvent,
  StoredRun,
  StoreOptions,
  Unsubscribe,
  UpdateOptions,
  UpdateResult,
} from "./store.ts";
// The store contract, and what every store implementation needs
export {
  assertStoreContract,
  attemptStore,
  DEFAULT_TTL_MS,
  historyItemBytes,
  isStoreRefusal,
  ListenerSet,
  resolveTtlMs,
  STORE_CONTRACT_VERSION,
  StoreError,
  StoreRefusedError,
  wrapStoreError,
} from "./store.ts";

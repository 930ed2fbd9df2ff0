/**
 * Serves an ACP app on Node with graceful shutdown: on SIGTERM or SIGINT the instance stops taking
 * runs (503, and `/ping` turns 503 so load balancers stop routing to it), lets runs in flight
 * finish until the deadline, fails the rest, closes its store and exits 0.
 */
import type { AddressInfo } from "node:net";
import { type ACPApp, type Agent, APP_DEFAULTS, type AppOptions, createApp } from "@acp/core";
import { type ServerType, serve } from "@hono/node-server";
import { playgroundHandler } from "../playground/serve.ts";
import type { ChosenStore } from "./store-from-env.ts";

export interface DemoServer {
  app: ACPApp;
  server: ServerType;
  url: string;
  /** Drains and closes everything; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

export interface DemoOptions {
  /** @default 8000 */
  port?: number;
  /** @default "0.0.0.0" */
  host?: string;
  /** How long runs in flight may take to finish on shutdown. @default APP_DEFAULTS.shutdownDeadlineMs */
  drainMs?: number;
  /**
   * Options for `createApp()` (leaseMs, auth, cors, history, limits…); unset ones take core's
   * defaults, but for `openapi` and `docs`, on in the demo (`GET /openapi.json`, `GET /docs`). @default {}
   */
  app?: Omit<AppOptions, "store">;
  /** Serves the playground (docs/playground.md) at `GET /`. @default true */
  playground?: boolean;
}

export async function startServer(
  agents: Agent[],
  chosen: ChosenStore,
  options: DemoOptions = {},
): Promise<DemoServer> {
  const { port = 8000, host = "0.0.0.0", drainMs = APP_DEFAULTS.shutdownDeadlineMs, playground = true } = options;
  const app = createApp(agents, { openapi: true, docs: true, ...options.app, store: chosen.store });
  await app.runtime.start();
  const servePlayground = playground ? playgroundHandler({ instanceId: app.runtime.instanceId }) : undefined;
  const fetch: typeof app.fetch = servePlayground
    ? (request, ...rest) => servePlayground(request) ?? app.fetch(request, ...rest)
    : app.fetch;
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch, port, hostname: host }, () => resolve(started));
  });
  const address = server.address() as AddressInfo;
  const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${address.port}`;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await app.shutdown({ deadlineMs: drainMs });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open streams would keep close() waiting: their runs have ended, so cut them.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await chosen.close();
    })());
  return { app, server, url, stop };
}

/**
 * The demo server: `pnpm demo` (or `tsx src/main.ts`). Its whole configuration comes from the
 * environment, documented in docs/configuration.md: `PORT`, `HOST` and `ACP_DRAIN_MS` here; the
 * store in store-from-env.ts; core's options (lease, timeouts, authentication, CORS, remote
 * session history) in app-options-from-env.ts; the log (`ACP_LOG_LEVEL`) in logger.ts.
 */
// First: the OpenTelemetry SDK (when OTEL_EXPORTER_OTLP_*ENDPOINT is set) is in place before the app loads.
import "./telemetry.ts";
import { APP_DEFAULTS } from "@acp/core";
import type { Logger } from "pino";
import { demoAgents } from "./agents.ts";
import { appOptionsFromEnv, type ChosenAppOptions } from "./app-options-from-env.ts";
import { createLogger } from "./logger.ts";
import { startServer } from "./server.ts";
import { type ChosenStore, storeFromEnv } from "./store-from-env.ts";
import { stopTelemetry, telemetrySummary } from "./telemetry.ts";

function numberFromEnv(logger: Logger, name: string, fallback?: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    logger.error({}, `cannot start: ${name} must be a whole number, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return value;
}

async function main(): Promise<void> {
  let logger: Logger;
  try {
    logger = createLogger();
  } catch (error) {
    createLogger({}).error({}, `cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const port = numberFromEnv(logger, "PORT", 8000);
  const drainMs = numberFromEnv(logger, "ACP_DRAIN_MS", APP_DEFAULTS.shutdownDeadlineMs);
  let appOptions: ChosenAppOptions;
  try {
    appOptions = appOptionsFromEnv();
  } catch (error) {
    logger.error({}, `cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  let chosen: ChosenStore;
  try {
    chosen = await storeFromEnv(process.env, logger);
  } catch (error) {
    logger.error({}, `cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const demo = await startServer(demoAgents, chosen, {
    port,
    host: process.env.HOST || "0.0.0.0",
    drainMs,
    app: { ...appOptions.options, logger },
  });
  const instance = { instance_id: demo.app.runtime.instanceId };
  logger.info(instance, `store: ${chosen.description}`);
  for (const line of appOptions.summary) logger.info(instance, line);
  const traces = telemetrySummary();
  if (traces !== undefined) logger.info(instance, traces);
  logger.info(
    { ...instance, url: demo.url },
    `instance ${demo.app.runtime.instanceId} listening on ${demo.url} (agents: ${demoAgents.map((a) => a.manifest.name).join(", ")})`,
  );
  logger.info(instance, `playground: open ${demo.url}/ in a browser (docs/playground.md)`);
  const onSignal = (signal: string): void => {
    logger.info(instance, `${signal}: draining (up to ${drainMs} ms), then exiting`);
    demo.stop().then(
      () => {
        logger.info(instance, "stopped cleanly");
        // The spans still buffered go out before the process does.
        void stopTelemetry().finally(() => process.exit(0));
      },
      (error: unknown) => {
        logger.error({ ...instance, err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
}

await main();

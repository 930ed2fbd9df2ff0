/**
 * The demo server: `pnpm demo` (or `tsx src/main.ts`). Its whole configuration comes from the
 * environment, documented in docs/configuration.md: `PORT`, `HOST` and `ACP_DRAIN_MS` here; the
 * store in store-from-env.ts; core's options (lease, timeouts, authentication, CORS, remote
 * session history) in app-options-from-env.ts.
 */
import { APP_DEFAULTS } from "@acp/core";
import { demoAgents } from "./agents.ts";
import { appOptionsFromEnv, type ChosenAppOptions } from "./app-options-from-env.ts";
import { startServer } from "./server.ts";
import { type ChosenStore, storeFromEnv } from "./store-from-env.ts";

function numberFromEnv(name: string, fallback?: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`[acp] ${name} must be a whole number, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return value;
}

async function main(): Promise<void> {
  const port = numberFromEnv("PORT", 8000);
  const drainMs = numberFromEnv("ACP_DRAIN_MS", APP_DEFAULTS.shutdownDeadlineMs);
  let appOptions: ChosenAppOptions;
  try {
    appOptions = appOptionsFromEnv();
  } catch (error) {
    console.error(`[acp] cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  let chosen: ChosenStore;
  try {
    chosen = await storeFromEnv();
  } catch (error) {
    console.error(`[acp] cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const demo = await startServer(demoAgents, chosen, {
    port,
    host: process.env.HOST || "0.0.0.0",
    drainMs,
    app: appOptions.options,
  });
  console.log(`[acp] store: ${chosen.description}`);
  for (const line of appOptions.summary) console.log(`[acp] ${line}`);
  console.log(
    `[acp] instance ${demo.app.runtime.instanceId} listening on ${demo.url} (agents: ${demoAgents.map((a) => a.manifest.name).join(", ")})`,
  );
  const onSignal = (signal: string): void => {
    console.log(`[acp] ${signal}: draining (up to ${drainMs} ms), then exiting`);
    demo.stop().then(
      () => {
        console.log("[acp] stopped cleanly");
        process.exit(0);
      },
      (error: unknown) => {
        console.error("[acp] shutdown failed:", error);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
}

await main();

/**
 * The demo server: `pnpm demo` (or `tsx src/main.ts`). `PORT` (default 8000), `HOST` (default
 * 0.0.0.0), `ACP_LEASE_MS`, `ACP_DRAIN_MS`, `ACP_STORE_TIMEOUT_MS` (how long a store call may take
 * before the request answers 503, default 5000) and `ACP_OUTAGE_MS` (how long a running agent's
 * writes ride out a store outage before its run fails, default 30000) tune it; the store comes from
 * the environment (see store-from-env.ts and the README's HA guide). `ACP_API_KEYS`,
 * `ACP_CORS_ORIGINS` and `ACP_HISTORY_ORIGINS` turn on authentication, CORS and remote session
 * history (see app-options-from-env.ts).
 */
import { demoAgents } from "./agents.ts";
import { appOptionsFromEnv, type ChosenAppOptions } from "./app-options-from-env.ts";
import { startServer } from "./server.ts";
import { storeFromEnv } from "./store-from-env.ts";

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
  const leaseMs = numberFromEnv("ACP_LEASE_MS");
  const drainMs = numberFromEnv("ACP_DRAIN_MS", 10_000);
  const storeTimeoutMs = numberFromEnv("ACP_STORE_TIMEOUT_MS");
  const outageMs = numberFromEnv("ACP_OUTAGE_MS");
  let appOptions: ChosenAppOptions;
  try {
    appOptions = appOptionsFromEnv();
  } catch (error) {
    console.error(`[acp] cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  let chosen;
  try {
    chosen = await storeFromEnv();
  } catch (error) {
    console.error(`[acp] cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const demo = await startServer(demoAgents, chosen, { port, host: process.env.HOST || "0.0.0.0", leaseMs, drainMs, storeTimeoutMs, outageMs, app: appOptions.options });
  console.log(`[acp] store: ${chosen.description}`);
  for (const line of appOptions.summary) console.log(`[acp] ${line}`);
  console.log(`[acp] instance ${demo.app.runtime.instanceId} listening on ${demo.url} (agents: ${demoAgents.map((a) => a.manifest.name).join(", ")})`);
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

/**
 * The security options of the demo from the environment: `ACP_API_KEYS` (comma-separated keys;
 * set, every request but `/ping` needs one), `ACP_CORS_ORIGINS` (comma-separated origins or `*`),
 * `ACP_HISTORY_ORIGINS` (comma-separated origins whose session history URLs may be fetched) and
 * `ACP_HISTORY_ALLOW_PRIVATE` (`true` to fetch those from private networks too).
 */
import { acpCors, apiKeyAuth, createHistoryFetcher, type AppOptions } from "@acp/core";

type Env = Record<string, string | undefined>;

export interface ChosenAppOptions {
  options: Omit<AppOptions, "store">;
  /** Lines for the start-up log: what is on, never a key. */
  summary: string[];
}

/** A comma-separated variable as a list; undefined when unset or empty. */
function list(env: Env, name: string): string[] | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const items = raw.split(",").map((item) => item.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`${name} is set but lists nothing`);
  return items;
}

/** Runs core's own check of an option now, before a store is opened, naming the variable. */
function check(name: string, validate: () => unknown): void {
  try {
    validate();
  } catch (error) {
    throw new Error(`${name}: ${(error as Error).message}`);
  }
}

/** Reads the variables; throws a readable Error (never showing a key) when one is wrong. */
export function appOptionsFromEnv(env: Env = process.env): ChosenAppOptions {
  const options: Omit<AppOptions, "store"> = {};
  const summary: string[] = [];
  const apiKeys = list(env, "ACP_API_KEYS");
  if (apiKeys) {
    options.auth = { apiKeys };
    check("ACP_API_KEYS", () => apiKeyAuth({ apiKeys }));
    summary.push(`auth: on (${apiKeys.length} ${apiKeys.length === 1 ? "key" : "keys"})`);
  } else {
    summary.push("auth: off (set ACP_API_KEYS to require an API key)");
  }
  const corsOrigins = list(env, "ACP_CORS_ORIGINS");
  if (corsOrigins) {
    options.cors = { origins: corsOrigins.includes("*") ? "*" : corsOrigins };
    check("ACP_CORS_ORIGINS", () => acpCors(options.cors!));
    summary.push(`cors: ${corsOrigins.join(", ")}`);
  }
  const historyOrigins = list(env, "ACP_HISTORY_ORIGINS");
  const allowPrivate = /^(1|true|yes)$/i.test(env.ACP_HISTORY_ALLOW_PRIVATE ?? "");
  if (historyOrigins) {
    options.history = { allowedOrigins: historyOrigins, allowPrivateNetworks: allowPrivate };
    check("ACP_HISTORY_ORIGINS", () => createHistoryFetcher(options.history));
    summary.push(`remote session history from: ${historyOrigins.join(", ")}${allowPrivate ? " (private networks allowed)" : ""}`);
  }
  return { options, summary };
}

/**
 * Core's options ({@link AppOptions}) from the demo's environment: the runtime's times
 * (`ACP_LEASE_MS`, `ACP_STORE_TIMEOUT_MS`, `ACP_OUTAGE_MS`; unset, core's defaults apply) and the
 * security options: `ACP_API_KEYS` (comma-separated keys; set, every request but `/ping`,
 * `/openapi.json` and `/docs` needs one), `ACP_CORS_ORIGINS` (comma-separated origins or `*`), `ACP_HISTORY_ORIGINS`
 * (comma-separated origins whose session history URLs may be fetched) and
 * `ACP_HISTORY_ALLOW_PRIVATE` (`true` to fetch those from private networks too); the per-instance
 * capacity `ACP_MAX_CONCURRENT_RUNS` and `ACP_MAX_STREAMS`; `ACP_METRICS=off` hides `GET /metrics`,
 * `ACP_DOCS=off` hides `GET /docs`.
 * docs/configuration.md documents each variable.
 */
import { type AppOptions, acpCors, apiKeyAuth, createHistoryFetcher } from "@acp/core";

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
  const items = raw
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  if (items.length === 0) throw new Error(`${name} is set but lists nothing`);
  return items;
}

/** A variable holding a whole number (of milliseconds, or a count); undefined when unset or empty. */
function milliseconds(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  return value;
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
  // 0 means core's default for the lease and the store timeout (neither can be 0); an outage window of 0 retries nothing.
  const leaseMs = milliseconds(env, "ACP_LEASE_MS");
  if (leaseMs) options.leaseMs = leaseMs;
  const storeTimeoutMs = milliseconds(env, "ACP_STORE_TIMEOUT_MS");
  if (storeTimeoutMs) options.storeTimeoutMs = storeTimeoutMs;
  const outageMs = milliseconds(env, "ACP_OUTAGE_MS");
  if (outageMs !== undefined) options.outageMs = outageMs;
  // Per-instance capacity; unset (or 0), core's defaults apply.
  const maxConcurrentRuns = milliseconds(env, "ACP_MAX_CONCURRENT_RUNS");
  const maxStreams = milliseconds(env, "ACP_MAX_STREAMS");
  if (maxConcurrentRuns || maxStreams) {
    options.limits = {
      ...(maxConcurrentRuns ? { maxConcurrentRuns } : {}),
      ...(maxStreams ? { maxStreams } : {}),
    };
  }
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
    summary.push(
      `remote session history from: ${historyOrigins.join(", ")}${allowPrivate ? " (private networks allowed)" : ""}`,
    );
  }
  // Served unless turned off, so that a scraper finds every instance at the same path.
  const metrics = (env.ACP_METRICS ?? "").trim().toLowerCase();
  if (!/^(|on|true|1|yes|off|false|0|no)$/.test(metrics))
    throw new Error(`ACP_METRICS must be on or off, got ${JSON.stringify(env.ACP_METRICS)}`);
  options.metrics = !/^(off|false|0|no)$/.test(metrics);
  summary.push(options.metrics ? "metrics: GET /metrics (ACP_METRICS=off hides it)" : "metrics: off");
  // The API reference page, on unless turned off; GET /openapi.json is served either way.
  const docs = (env.ACP_DOCS ?? "").trim().toLowerCase();
  if (!/^(|on|true|1|yes|off|false|0|no)$/.test(docs))
    throw new Error(`ACP_DOCS must be on or off, got ${JSON.stringify(env.ACP_DOCS)}`);
  options.docs = !/^(off|false|0|no)$/.test(docs);
  summary.push(options.docs ? "API reference: GET /docs (ACP_DOCS=off hides it)" : "API reference: off");
  return { options, summary };
}

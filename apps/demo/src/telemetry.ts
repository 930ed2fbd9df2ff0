/**
 * OpenTelemetry traces of the demo. Imported first by main.ts, so that the SDK is in place before
 * the app loads: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
 * set, the Node SDK starts and exports the spans core records over OTLP, configured by the
 * standard `OTEL_*` variables (protocol, headers, service name, sampler, batching; see
 * docs/configuration.md). Otherwise nothing is loaded and core's spans cost next to nothing.
 */
import type { NodeSDK, tracing } from "@opentelemetry/sdk-node";

type Env = Record<string, string | undefined>;

/** The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one. */
export const DEFAULT_SERVICE_NAME = "acp-demo";

let sdk: NodeSDK | undefined;

/** Whether the environment asks for traces: an OTLP endpoint is set and the SDK is not disabled. */
export function tracesRequested(env: Env = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/**
 * Starts the SDK (once). `traceExporter` replaces the OTLP exporter the `OTEL_*` variables choose:
 * the benchmark passes one that drops every span, to measure the cost of recording alone.
 */
export async function startTelemetry(options: { traceExporter?: tracing.SpanExporter } = {}): Promise<void> {
  if (sdk !== undefined) return;
  // The demo serves its metrics to Prometheus and writes its logs to stdout: the SDK sends traces
  // only, unless the operator asks for more.
  process.env.OTEL_METRICS_EXPORTER ??= "none";
  process.env.OTEL_LOGS_EXPORTER ??= "none";
  const named =
    Boolean(process.env.OTEL_SERVICE_NAME?.trim()) ||
    /(^|,)\s*service\.name\s*=/.test(process.env.OTEL_RESOURCE_ATTRIBUTES ?? "");
  // Loaded only when traces are wanted: the SDK is large.
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  sdk = new NodeSDK({
    ...(named ? {} : { serviceName: DEFAULT_SERVICE_NAME }),
    ...(options.traceExporter === undefined ? {} : { traceExporter: options.traceExporter }),
  });
  sdk.start();
}

/** Sends the spans still buffered and stops the SDK; call it before the process exits. */
export async function stopTelemetry(): Promise<void> {
  const started = sdk;
  sdk = undefined;
  await started?.shutdown().catch(() => {});
}

/** One line for the start-up log: where traces go, or `undefined` when they are off. */
export function telemetrySummary(env: Env = process.env): string | undefined {
  if (sdk === undefined) return undefined;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const protocol =
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() || "http/protobuf";
  // Only the origin: an endpoint URL may carry a token in its query.
  let origin = "the configured endpoint";
  try {
    if (endpoint) origin = new URL(endpoint).origin;
  } catch {
    // left as is: the exporter reports a malformed URL itself
  }
  return `traces: OpenTelemetry, OTLP ${protocol} to ${origin}`;
}

if (tracesRequested()) await startTelemetry();

/**
 * The OpenTelemetry Node SDK as an application would run it, for the observability cost
 * measurement: every span is recorded, batched and handed to an exporter, which drops it (the
 * network is not what is measured). No auto-instrumentation: core makes its own spans.
 */
import { NodeSDK, tracing } from "@opentelemetry/sdk-node";

/** An exporter that accepts every batch and keeps nothing. */
const discarding: tracing.SpanExporter = {
  export(_spans, done) {
    done({ code: 0 });
  },
  async shutdown() {},
};

/** Starts the SDK; the returned function flushes and stops it. */
export function startTracingSdk(): () => Promise<void> {
  const sdk = new NodeSDK({
    serviceName: "acp-bench",
    spanProcessors: [new tracing.BatchSpanProcessor(discarding)],
    instrumentations: [],
    // Nothing but traces: no metric or log exporters, no resource detectors probing the machine.
    resourceDetectors: [],
  });
  sdk.start();
  return () => sdk.shutdown();
}

/**
 * Prometheus metrics: the families `GET /metrics` serves and the object that keeps them.
 */
export { createMetrics, Metrics, type MetricsOption } from "./metrics.ts";
export * from "./names.ts";

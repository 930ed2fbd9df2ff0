/**
 * The names of the metric families `GET /metrics` serves, their labels, and the fixed label
 * values that stand for anything outside a bounded set. Dashboards and alert rules rely on these
 * names: they live here only (see docs/observability.md).
 */

/** Metric family names. */
export const METRIC = Object.freeze({
  runsStarted: "acp_runs_started_total",
  runsFinished: "acp_runs_finished_total",
  runDuration: "acp_run_duration_seconds",
  runsInFlight: "acp_runs_in_flight",
  sseStreamsOpen: "acp_sse_streams_open",
  storeOperationDuration: "acp_store_operation_duration_seconds",
  storeErrors: "acp_store_errors_total",
  orphanedRuns: "acp_orphaned_runs_total",
  httpRequests: "acp_http_requests_total",
});

/** Label names. None holds a run id, a session id or any other unbounded value. */
export const LABEL = Object.freeze({
  agent: "agent",
  status: "status",
  operation: "operation",
  outcome: "outcome",
  method: "method",
  route: "route",
});

/** The `agent` label of a run whose agent this instance does not serve (never expected: the set stays bounded). */
export const OTHER_AGENT = "_other";

/** The `route` label of a request that matched no route (a 404 of the router): never its path. */
export const UNMATCHED_ROUTE = "_unmatched";

/** The `method` label of a request whose method is not one of {@link HTTP_METHODS}. */
export const OTHER_METHOD = "_OTHER";

/** HTTP methods kept as they are in the `method` label. */
export const HTTP_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** What became of an orphaned run (the `outcome` label). */
export type OrphanOutcome = "failed" | "cancelled" | "adopted";

/** The run statuses an `acp_runs_finished_total` sample can carry. */
export type FinishedStatus = "completed" | "failed" | "cancelled";

/** Buckets of `acp_run_duration_seconds`: agent runs last from milliseconds to an hour awaiting a human. */
export const RUN_DURATION_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];

/** Buckets of `acp_store_operation_duration_seconds`: a store call takes from 0.1 ms up to its timeout (5 s by default). */
export const STORE_DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/**
 * Prometheus metrics of one app: the runtime, the store calls and the HTTP layer report to a
 * {@link Metrics}, which keeps the families of {@link METRIC} in a prom-client registry.
 *
 * prom-client is loaded the first time an app asks for metrics: an app without them never loads
 * it, and each place that reports checks one `metrics !== undefined` and does nothing else.
 */
import { createRequire } from "node:module";
import type * as PromClient from "prom-client";
import type { Counter, Gauge, Histogram, Registry } from "prom-client";
import { isTerminal, type Run } from "../models.ts";
import {
  type FinishedStatus,
  HTTP_METHODS,
  LABEL,
  METRIC,
  type OrphanOutcome,
  OTHER_AGENT,
  OTHER_METHOD,
  RUN_DURATION_BUCKETS,
  STORE_DURATION_BUCKETS,
} from "./names.ts";

/** The `metrics` option: `true` for a registry of the app's own, or the prom-client `Registry` to fill. */
export type MetricsOption = boolean | Registry;

let promClient: typeof PromClient | undefined;

function loadPromClient(): typeof PromClient {
  // A CommonJS package: required synchronously, so that createApp() stays synchronous.
  promClient ??= createRequire(import.meta.url)("prom-client") as typeof PromClient;
  return promClient;
}

/** One of prom-client's Node default metrics: a registry that has it collects them already. */
const DEFAULTS_MARKER = "process_cpu_user_seconds_total";

const FINISHED_STATUSES: readonly FinishedStatus[] = ["completed", "failed", "cancelled"];
const ORPHAN_OUTCOMES: readonly OrphanOutcome[] = ["failed", "cancelled", "adopted"];

/**
 * The metrics of one app, or `undefined` when `option` is off.
 * @param who names the caller in the error thrown for a wrong option.
 */
export function createMetrics(
  option: MetricsOption | undefined,
  agents: readonly string[],
  who: string,
): Metrics | undefined {
  if (option === undefined || option === false) return undefined;
  if (option !== true && typeof (option as Partial<Registry>).registerMetric !== "function")
    throw new TypeError(`[acp] ${who}: metrics must be true, false or a prom-client Registry`);
  const client = loadPromClient();
  return new Metrics(client, option === true ? new client.Registry() : option, agents);
}

export class Metrics {
  /** The registry `GET /metrics` renders. */
  readonly registry: Registry;
  readonly #agents: ReadonlySet<string>;
  readonly #started: Counter<string>;
  readonly #finished: Counter<string>;
  readonly #duration: Histogram<string>;
  readonly #inFlight: Gauge<string>;
  readonly #sseOpen: Gauge<string>;
  readonly #storeDuration: Histogram<string>;
  readonly #storeErrors: Counter<string>;
  readonly #orphans: Counter<string>;
  readonly #http: Counter<string>;

  constructor(client: typeof PromClient, registry: Registry, agents: readonly string[]) {
    this.registry = registry;
    this.#agents = new Set(agents);
    const registers = [registry];
    // Two apps of one process may share a registry: the second reuses the families of the first.
    const family = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
    this.#started = family(
      METRIC.runsStarted,
      () =>
        new client.Counter({
          name: METRIC.runsStarted,
          help: "Runs started on this instance",
          labelNames: [LABEL.agent],
          registers,
        }),
    );
    this.#finished = family(
      METRIC.runsFinished,
      () =>
        new client.Counter({
          name: METRIC.runsFinished,
          help: "Runs whose end this instance recorded, by final status",
          labelNames: [LABEL.agent, LABEL.status],
          registers,
        }),
    );
    this.#duration = family(
      METRIC.runDuration,
      () =>
        new client.Histogram({
          name: METRIC.runDuration,
          help: "Time from a run's creation to its end, awaiting included, of the runs this instance ended",
          labelNames: [LABEL.agent, LABEL.status],
          buckets: [...RUN_DURATION_BUCKETS],
          registers,
        }),
    );
    this.#inFlight = family(
      METRIC.runsInFlight,
      () =>
        new client.Gauge({
          name: METRIC.runsInFlight,
          help: "Runs whose handler this instance holds now (awaiting ones included)",
          labelNames: [LABEL.agent],
          registers,
        }),
    );
    this.#sseOpen = family(
      METRIC.sseStreamsOpen,
      () => new client.Gauge({ name: METRIC.sseStreamsOpen, help: "SSE responses open on this instance", registers }),
    );
    this.#storeDuration = family(
      METRIC.storeOperationDuration,
      () =>
        new client.Histogram({
          name: METRIC.storeOperationDuration,
          help: "Time of each store call, failed ones and timeouts included",
          labelNames: [LABEL.operation],
          buckets: [...STORE_DURATION_BUCKETS],
          registers,
        }),
    );
    this.#storeErrors = family(
      METRIC.storeErrors,
      () =>
        new client.Counter({
          name: METRIC.storeErrors,
          help: "Store calls that failed or timed out",
          labelNames: [LABEL.operation],
          registers,
        }),
    );
    this.#orphans = family(
      METRIC.orphanedRuns,
      () =>
        new client.Counter({
          name: METRIC.orphanedRuns,
          help: "Runs of lost or drained instances that this instance ended (failed, cancelled) or took over (adopted)",
          labelNames: [LABEL.outcome],
          registers,
        }),
    );
    this.#http = family(
      METRIC.httpRequests,
      () =>
        new client.Counter({
          name: METRIC.httpRequests,
          help: "HTTP requests answered, by method, route pattern and status code",
          labelNames: [LABEL.method, LABEL.route, LABEL.status],
          registers,
        }),
    );
    if (registry.getSingleMetric(DEFAULTS_MARKER) === undefined) client.collectDefaultMetrics({ register: registry });
    // Series at zero from the start, so that rate() and alerts see them before the first event.
    for (const agent of this.#agents) {
      this.#started.inc({ agent }, 0);
      this.#inFlight.inc({ agent }, 0);
      for (const status of FINISHED_STATUSES) this.#finished.inc({ agent, status }, 0);
    }
    for (const outcome of ORPHAN_OUTCOMES) this.#orphans.inc({ outcome }, 0);
  }

  #agent(name: string): string {
    return this.#agents.has(name) ? name : OTHER_AGENT;
  }

  /** A run was created here and its handler starts. */
  runStarted(agentName: string): void {
    const agent = this.#agent(agentName);
    this.#started.inc({ agent });
    this.#inFlight.inc({ agent });
  }

  /** A run taken over from another instance starts its handler here. */
  runHeld(agentName: string): void {
    this.#inFlight.inc({ agent: this.#agent(agentName) });
  }

  /** The handler of `run` (as this instance last saw it) ended here; counted as finished if the run ended. */
  runReleased(run: Run): void {
    const agent = this.#agent(run.agent_name);
    this.#inFlight.dec({ agent });
    if (!isTerminal(run.status)) return;
    const status = run.status;
    this.#finished.inc({ agent, status });
    const ms = Date.parse(run.finished_at ?? "") - Date.parse(run.created_at);
    if (Number.isFinite(ms)) this.#duration.observe({ agent, status }, Math.max(0, ms) / 1000);
  }

  /** An orphaned run was failed, cancelled or adopted by this instance. */
  orphaned(outcome: OrphanOutcome): void {
    this.#orphans.inc({ outcome });
  }

  sseOpened(): void {
    this.#sseOpen.inc();
  }

  sseClosed(): void {
    this.#sseOpen.dec();
  }

  /** Times the store call `call`, started at `startedAt` (`performance.now()`), and counts it if it fails. */
  storeCall(operation: string, startedAt: number, call: Promise<unknown>): void {
    const labels = { operation };
    call.then(
      () => this.#storeDuration.observe(labels, (performance.now() - startedAt) / 1000),
      () => {
        this.#storeDuration.observe(labels, (performance.now() - startedAt) / 1000);
        this.#storeErrors.inc(labels);
      },
    );
  }

  /** A request was answered; `route` is the pattern it matched (see {@link UNMATCHED_ROUTE}). */
  httpRequest(method: string, route: string, status: number): void {
    this.#http.inc({ method: HTTP_METHODS.has(method) ? method : OTHER_METHOD, route, status });
  }

  /** The Prometheus text exposition of the registry, and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

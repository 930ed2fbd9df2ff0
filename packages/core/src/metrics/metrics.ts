/**
 * Prometheus metrics of one app: the runtime, the store calls and the HTTP layer report to a
 * {@link Metrics}, which keeps the families of {@link METRIC} in a prom-client registry.
 *
 * prom-client is loaded the first time an app asks for metrics: an app without them never loads
 * it, and each place that reports checks one `metrics !== undefined` and does nothing else.
 * On the run path a report adds to a number in a series looked up once (see families.ts).
 */
import { createRequire } from "node:module";
import type * as PromClient from "prom-client";
import type { Registry } from "prom-client";
import { isTerminal, type Run } from "../models.ts";
import { HistogramFamily, type HistogramSeries, type Series, SeriesFamily } from "./families.ts";
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

/** Records one ended store call: when it started (`performance.now()`), and whether it failed. */
export type StoreTimer = (startedAt: number, failed: boolean) => void;

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

/** The series of one agent, looked up once. */
interface AgentSeries {
  started: Series;
  inFlight: Series;
  finished: Record<FinishedStatus, Series>;
  /** Made at the first run that ends with that status. */
  duration: Partial<Record<FinishedStatus, HistogramSeries>>;
}

export class Metrics {
  /** The registry `GET /metrics` renders. */
  readonly registry: Registry;
  readonly #agents = new Map<string, AgentSeries>();
  readonly #started: SeriesFamily;
  readonly #finished: SeriesFamily;
  readonly #duration: HistogramFamily;
  readonly #inFlight: SeriesFamily;
  readonly #sseOpen: Series;
  readonly #storeDuration: HistogramFamily;
  readonly #storeErrors: SeriesFamily;
  readonly #orphans: SeriesFamily;
  readonly #http: SeriesFamily;
  readonly #requests = new Map<string, Series>();

  constructor(client: typeof PromClient, registry: Registry, agents: readonly string[]) {
    this.registry = registry;
    // Two apps of one process may share a registry: the second reuses the families of the first.
    const family = <T extends SeriesFamily | HistogramFamily>(make: () => T): T => {
      const made = make();
      const existing = registry.getSingleMetric(made.name) as unknown;
      if (existing === undefined) {
        registry.registerMetric(made as never);
        return made;
      }
      if (existing instanceof (made.constructor as new (...args: never[]) => T)) return existing as T;
      throw new TypeError(`[acp] metrics: the registry already has a metric named ${made.name} that is not ours`);
    };
    const counter = (name: string, help: string) => family(() => new SeriesFamily(name, help, "counter"));
    this.#started = counter(METRIC.runsStarted, "Runs started on this instance");
    this.#finished = counter(METRIC.runsFinished, "Runs whose end this instance recorded, by final status");
    this.#duration = family(
      () =>
        new HistogramFamily(
          METRIC.runDuration,
          "Time from a run's creation to its end, awaiting included, of the runs this instance ended",
          RUN_DURATION_BUCKETS,
        ),
    );
    this.#inFlight = family(
      () =>
        new SeriesFamily(
          METRIC.runsInFlight,
          "Runs whose handler this instance holds now (awaiting ones included)",
          "gauge",
        ),
    );
    this.#sseOpen = family(
      () => new SeriesFamily(METRIC.sseStreamsOpen, "SSE responses open on this instance", "gauge"),
    ).series("", {});
    this.#storeDuration = family(
      () =>
        new HistogramFamily(
          METRIC.storeOperationDuration,
          "Time of each store call, failed ones and timeouts included",
          STORE_DURATION_BUCKETS,
        ),
    );
    this.#storeErrors = counter(METRIC.storeErrors, "Store calls that failed or timed out");
    this.#orphans = counter(
      METRIC.orphanedRuns,
      "Runs of lost or drained instances that this instance ended (failed, cancelled) or took over (adopted)",
    );
    this.#http = counter(METRIC.httpRequests, "HTTP requests answered, by method, route pattern and status code");
    if (registry.getSingleMetric(DEFAULTS_MARKER) === undefined) client.collectDefaultMetrics({ register: registry });
    // Series at zero from the start, so that rate() and alerts see them before the first event.
    for (const agent of agents) this.#agents.set(agent, this.#agentSeries(agent));
    for (const outcome of ORPHAN_OUTCOMES) this.#orphans.series(outcome, { [LABEL.outcome]: outcome });
  }

  #agentSeries(agent: string): AgentSeries {
    const finished = (status: FinishedStatus): Series =>
      this.#finished.series(`${agent}\n${status}`, { [LABEL.agent]: agent, [LABEL.status]: status });
    return {
      started: this.#started.series(agent, { [LABEL.agent]: agent }),
      inFlight: this.#inFlight.series(agent, { [LABEL.agent]: agent }),
      finished: Object.fromEntries(FINISHED_STATUSES.map((status) => [status, finished(status)])) as Record<
        FinishedStatus,
        Series
      >,
      duration: {},
    };
  }

  /** An agent this instance does not serve counts under one fixed name: the label stays bounded. */
  #agent(name: string): AgentSeries {
    let series = this.#agents.get(name);
    if (series === undefined) {
      series = this.#agentSeries(OTHER_AGENT);
      this.#agents.set(OTHER_AGENT, series);
    }
    return series;
  }

  /** A run was created here and its handler starts. */
  runStarted(agentName: string): void {
    const agent = this.#agent(agentName);
    agent.started.value += 1;
    agent.inFlight.value += 1;
  }

  /** A run taken over from another instance starts its handler here. */
  runHeld(agentName: string): void {
    this.#agent(agentName).inFlight.value += 1;
  }

  /** The handler of `run` (as this instance last saw it) ended here; counted as finished if the run ended. */
  runReleased(run: Run): void {
    const agent = this.#agent(run.agent_name);
    agent.inFlight.value -= 1;
    if (!isTerminal(run.status)) return;
    const status = run.status as FinishedStatus;
    agent.finished[status].value += 1;
    const ms = Date.parse(run.finished_at ?? "") - Date.parse(run.created_at);
    if (!Number.isFinite(ms)) return;
    const name = this.#agents.has(run.agent_name) ? run.agent_name : OTHER_AGENT;
    agent.duration[status] ??= this.#duration.series(`${name}\n${status}`, {
      [LABEL.agent]: name,
      [LABEL.status]: status,
    });
    agent.duration[status].observe(Math.max(0, ms) / 1000);
  }

  /** An orphaned run was failed, cancelled or adopted by this instance. */
  orphaned(outcome: OrphanOutcome): void {
    this.#orphans.series(outcome, { [LABEL.outcome]: outcome }).value += 1;
  }

  sseOpened(): void {
    this.#sseOpen.value += 1;
  }

  sseClosed(): void {
    this.#sseOpen.value -= 1;
  }

  /**
   * What times the calls of one store operation: called with when a call started
   * (`performance.now()`) once it has ended, and whether it failed (then it is also counted).
   * Looked up once per operation; the guard calls it where it sees the call end (no promise).
   */
  storeOperation(operation: string): StoreTimer {
    // Made at the operation's first call: an operation never called has no series.
    let duration: HistogramSeries | undefined;
    let errors: Series | undefined;
    return (startedAt, failed) => {
      duration ??= this.#storeDuration.series(operation, { [LABEL.operation]: operation });
      duration.observe((performance.now() - startedAt) / 1000);
      if (!failed) return;
      errors ??= this.#storeErrors.series(operation, { [LABEL.operation]: operation });
      errors.value += 1;
    };
  }

  /** A request was answered; `route` is the pattern it matched (see {@link UNMATCHED_ROUTE}). */
  httpRequest(method: string, route: string, status: number): void {
    const known = HTTP_METHODS.has(method) ? method : OTHER_METHOD;
    const key = `${known} ${status} ${route}`;
    let series = this.#requests.get(key);
    if (series === undefined) {
      series = this.#http.series(key, { [LABEL.method]: known, [LABEL.route]: route, [LABEL.status]: status });
      this.#requests.set(key, series);
    }
    series.value += 1;
  }

  /** The Prometheus text exposition of the registry, and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

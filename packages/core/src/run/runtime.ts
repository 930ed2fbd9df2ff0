/**
 * The instance's side of the protocol: starts runs here, and cancels, resumes and reads runs
 * that any instance started, through the shared store only. It also keeps this instance's
 * heartbeat and fails the runs of instances whose heartbeat ran out (orphans).
 */
import { randomUUID } from "node:crypto";
import type { Agent } from "../agent.ts";
import { ACPError, notFound } from "../errors.ts";
import { createHistoryFetcher, HISTORY_DEFAULTS, type HistoryFetcher, type HistoryOptions } from "../history-fetch.ts";
import {
  atCapacity,
  checkHistoryLength,
  checkMessageParts,
  checkRunInput,
  checkSessionRoom,
  LIMIT_DEFAULTS,
  type LimitOptions,
  type Limits,
  resolveLimits,
} from "../limits.ts";
import { consoleLogger, type Logger, runFields } from "../logger.ts";
import { createMetrics, type Metrics, type MetricsOption } from "../metrics/metrics.ts";
import {
  type AwaitResume,
  type ErrorModel,
  type Event,
  isSettled,
  isTerminal,
  type Run,
  type RunCreateRequest,
} from "../models.ts";
import { type HistoryBounds, SessionHistory } from "../session.ts";
import { assertStoreContract, type Store, type StoredRun } from "../store.ts";
import { sessionStoreId, visibleTo } from "../tenant.ts";
import { abandonRunSpan, inRunTrace, startRunSpan, traceContextOf } from "../trace/tracing.ts";
import { NEW_LOG, readLog } from "./durable.ts";
import { RunExecutor } from "./executor.ts";
import { waitForRecord } from "./follow.ts";
import { guardStore, isStoreOutage, retryOutage, type StoreHealth, whenLanded } from "./guarded-store.ts";
import { now } from "./now.ts";
import { outputFromLog, RunOutputs } from "./output.ts";
import { RunFeeds } from "./run-feed.ts";
import { RunWatch } from "./run-watch.ts";

export interface RuntimeOptions {
  /** Where runs, events and sessions live; share one backend between instances for HA. */
  store: Store;
  /** The agents this instance serves; their names must differ. */
  agents: readonly Agent[];
  /** How long an instance may go silent before another fails its runs as orphaned. @default 30_000 */
  leaseMs?: number;
  /** How long one store call may take before it counts as failed (a request then answers 503). @default 5_000 */
  storeTimeoutMs?: number;
  /** How long a running agent's writes are retried through a store outage before its run fails. @default 30_000 */
  outageMs?: number;
  /**
   * Prometheus metrics (see docs/observability.md): `true` keeps them in a registry of this
   * instance's own, a prom-client `Registry` gets them added; `createApp()` then serves `GET /metrics`.
   * @default false (nothing measured, prom-client not even loaded)
   */
  metrics?: MetricsOption;
  /**
   * How history URLs of a client's session descriptor that point at another server are loaded.
   * @default {} (none is loaded; items of this deployment always come from the store; see {@link HISTORY_DEFAULTS})
   */
  history?: HistoryOptions;
  /**
   * Limits on run input and run output.
   * @default { maxInputMessages: 100, maxPartsPerMessage: 100, maxEventsPerRun: 100_000 } (see {@link LIMIT_DEFAULTS})
   */
  limits?: LimitOptions;
  /**
   * Where the server's log lines go: a pino logger fits as is (see {@link Logger}). Lines about a
   * run carry `run_id`, `session_id`, `agent`, `instance_id` (and `trace_id` in a trace).
   * @default consoleLogger (human-readable lines on the console)
   */
  logger?: Logger;
}

/** Options of {@link Runtime.shutdown}. */
export interface ShutdownOptions {
  /** How long runs in flight get to finish before the rest are failed. @default 10_000 */
  deadlineMs?: number;
}

/** The default of every {@link RuntimeOptions} field, and of {@link ShutdownOptions.deadlineMs} (`shutdownDeadlineMs`). */
export const RUNTIME_DEFAULTS = Object.freeze({
  leaseMs: 30_000,
  storeTimeoutMs: 5_000,
  outageMs: 30_000,
  metrics: false,
  history: HISTORY_DEFAULTS,
  limits: LIMIT_DEFAULTS,
  logger: consoleLogger,
  shutdownDeadlineMs: 10_000,
});

/** Most candidate orphans one sweep looks at; the next sweep finds the rest. */
const SWEEP_BATCH = 500;

/**
 * Leases an orphaned durable run is left for an instance that serves its agent (durably) before
 * an instance that does not fails it: during a deploy that adds or moves an agent, instances of
 * the old and the new set run side by side, and only the new ones can adopt its runs.
 */
const UNSERVED_GRACE_LEASES = 20;

/** The error of a run whose executor could not write its end: a sweep here fails it later. */
const END_UNWRITTEN = "The run's end could not be recorded (the store kept failing); the run cannot continue";

/** Smallest accepted value of each time option: a shorter lease or timeout could not work. */
const MINIMUM_MS = { leaseMs: 100, storeTimeoutMs: 10, outageMs: 0 } as const;

export class Runtime {
  readonly instanceId = randomUUID();
  readonly store: Store;
  /** This instance's metrics, `undefined` when `RuntimeOptions.metrics` is off. */
  readonly metrics: Metrics | undefined;
  readonly leaseMs: number;
  readonly outageMs: number;
  readonly limits: Limits;
  /** Where this instance logs (`RuntimeOptions.logger`). */
  readonly logger: Logger;
  /**
   * The one periodic check of every run this instance watches (runs it executes, runs its
   * streams follow, runs its requests wait on): the safety net behind change notifications.
   */
  readonly watch: RunWatch;
  /** The shared readers of the runs this instance's streams follow: one per run, however many streams. */
  readonly feeds: RunFeeds;
  readonly #fetchHistory: HistoryFetcher;
  /** Whether the last heartbeat failed: outages are logged once, not every beat. */
  #beatFailing = false;
  /**
   * No orphan sweep before this time (epoch ms). After an outage of the shared store, every
   * instance's lease may have run out at once: each gets a lease's time to renew it before this
   * one takes its runs for orphans.
   */
  #sweepNotBefore = 0;
  readonly #agents = new Map<string, Agent>();
  /** Outputs of running runs as last read here: a run read again reads only its events since. */
  readonly #outputs: RunOutputs;
  readonly #local = new Map<string, { executor: RunExecutor; done: Promise<void> }>();
  /** Runs admitted on this instance (from the capacity check until their executor ends). */
  #admitted = 0;
  /**
   * Runs owned here that nothing drives any more, because writing their end (or hand-back)
   * failed: this instance's heartbeat keeps every other sweep off them, so its own sweeps retry.
   * Each maps to the error to fail it with; `undefined` hands a durable run off (owner "").
   */
  readonly #abandoned = new Map<string, string | undefined>();
  /** Orphaned durable runs this instance cannot adopt (it lacks their agent): since when, epoch ms. */
  readonly #unserved = new Map<string, number>();
  /** Whether the store looks down (kept by the guarded store): a sync run is then stored before it starts. */
  readonly #storeHealth: StoreHealth = { down: false };
  /** The sweep in progress, if any. */
  #sweeping: Promise<number> | undefined;
  #started: Promise<void> | undefined;
  /** {@link start} has succeeded. */
  #startDone = false;
  #timers: NodeJS.Timeout[] = [];
  #draining = false;

  /**
   * @param options see {@link RuntimeOptions}; a wrong one throws a TypeError here.
   * @param who names the caller in those errors: `createApp()` passes its own name.
   */
  constructor(options: RuntimeOptions, who = "new Runtime()") {
    const {
      store,
      agents,
      leaseMs = RUNTIME_DEFAULTS.leaseMs,
      storeTimeoutMs = RUNTIME_DEFAULTS.storeTimeoutMs,
      outageMs = RUNTIME_DEFAULTS.outageMs,
      metrics = RUNTIME_DEFAULTS.metrics,
      history,
      limits,
      logger = RUNTIME_DEFAULTS.logger,
    } = options;
    assertStoreContract(store, who);
    this.limits = resolveLimits(limits, who);
    this.#fetchHistory = createHistoryFetcher(history, who);
    for (const [name, value] of [
      ["leaseMs", leaseMs],
      ["storeTimeoutMs", storeTimeoutMs],
      ["outageMs", outageMs],
    ] as const) {
      const min = MINIMUM_MS[name];
      if (!Number.isFinite(value) || value < min)
        throw new TypeError(`[acp] ${who}: ${name} must be a number of milliseconds of at least ${min}, got ${value}`);
    }
    this.metrics = createMetrics(
      metrics,
      agents.map((agent) => agent.manifest.name),
      who,
    );
    this.store = guardStore(store, storeTimeoutMs, this.metrics, this.#storeHealth);
    this.#outputs = new RunOutputs(this.store);
    this.watch = new RunWatch(this.store, undefined, logger);
    // A shared read that fails is retried through an outage as long as a run's own writes are.
    this.feeds = new RunFeeds(this.store, this.watch, { outageMs });
    this.leaseMs = leaseMs;
    this.outageMs = outageMs;
    this.logger = logger;
    for (const agent of agents) {
      if (this.#agents.has(agent.manifest.name))
        throw new TypeError(`[acp] ${who}: two agents are named "${agent.manifest.name}"`);
      this.#agents.set(agent.manifest.name, agent);
    }
  }

  get agents(): Agent[] {
    return [...this.#agents.values()];
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** How many runs execute on this instance now. */
  get localRuns(): number {
    return this.#local.size;
  }

  agent(name: string): Agent {
    const found = this.#agents.get(name);
    if (!found) throw notFound(`Agent ${name} not found`);
    return found;
  }

  /** First heartbeat, then the timers; idempotent. Runs are only started once this resolved. */
  start(): Promise<void> {
    this.#started ??= (async () => {
      await this.store.heartbeat(this.instanceId, this.leaseMs);
      const beat = setInterval(() => this.#beat(), Math.max(50, Math.floor(this.leaseMs / 3)));
      const sweep = setInterval(
        () => {
          // Not while the store is known to be down (it would only fail), nor during the grace after.
          if (this.#beatFailing || Date.now() < this.#sweepNotBefore) return;
          this.sweepOrphans().catch((error: unknown) =>
            this.logger.error({ instance_id: this.instanceId, err: error }, "orphan sweep failed"),
          );
        },
        Math.max(50, Math.floor(this.leaseMs / 2)),
      );
      beat.unref();
      sweep.unref();
      this.#timers.push(beat, sweep);
      this.#startDone = true;
    })().catch((error: unknown) => {
      this.#started = undefined;
      throw error;
    });
    return this.#started;
  }

  #beat(): void {
    this.store.heartbeat(this.instanceId, this.leaseMs).then(
      () => {
        if (this.#beatFailing) {
          this.logger.info({ instance_id: this.instanceId }, "the store answers again: heartbeats resumed");
          this.#sweepNotBefore = Date.now() + this.leaseMs;
        }
        this.#beatFailing = false;
      },
      (error: unknown) => {
        if (!this.#beatFailing)
          this.logger.error(
            { instance_id: this.instanceId, reason: (error as Error).message },
            "heartbeat failed (logged once until it recovers)",
          );
        this.#beatFailing = true;
      },
    );
  }

  /**
   * Starts a run here; with a `tenant`, the run and its session are that tenant's only.
   * `context.origin` is the origin of this deployment's history URLs (see {@link HistoryBounds}).
   * @throws ACPError 503 past `limits.maxConcurrentRuns`; 422 when the run's session is full.
   */
  async createRun(request: RunCreateRequest, tenant?: string, context: { origin?: string } = {}): Promise<StoredRun> {
    if (this.#draining)
      throw new ACPError({
        code: "server_error",
        message: "This instance is shutting down; retry on another instance",
        status: 503,
      });
    const agent = this.agent(request.agent_name);
    checkRunInput(request.input, this.limits);
    checkHistoryLength(request.session?.history.length ?? 0, this.limits);
    // Counted at once, before any await, so that concurrent requests cannot all pass the check.
    if (this.#admitted >= this.limits.maxConcurrentRuns)
      throw atCapacity("maxConcurrentRuns", this.limits.maxConcurrentRuns);
    this.#admitted += 1;
    /** The run holds its slot until its executor takes it over (and gives it back at its end). */
    let held = true;
    try {
      // Once started, not awaited: a run that needs no store call before it executes starts at once.
      if (!this.#startDone) await this.start();
      const named = request.session_id ?? request.session?.id;
      const sessionId = named ?? randomUUID();
      if (named !== undefined) {
        const summary = await this.store.getSession(sessionStoreId(sessionId, tenant));
        if (summary !== undefined) checkSessionRoom(sessionId, summary, this.limits);
      }
      const run: Run = {
        run_id: randomUUID(),
        agent_name: agent.manifest.name,
        session_id: sessionId,
        status: "created",
        await_request: null,
        output: [],
        error: null,
        created_at: now(),
      };
      // The run is stored already started: one write instead of two, with both events in order.
      const started: Run = { ...run, status: "in-progress" };
      const record: StoredRun = { run: started, version: 1, owner: this.instanceId, resume: null };
      if (tenant !== undefined) record.tenant = tenant;
      // Under the request's span; its context goes into the record, for work done on the run elsewhere.
      const span = startRunSpan(run, this.instanceId);
      const traced = traceContextOf(span);
      if (traced !== undefined) record.trace = traced;
      const historyStoreId = sessionStoreId(sessionId, tenant);
      const historyUrls = request.session?.history ?? [];
      if (agent.durable) {
        // What another instance needs to replay the handler after a takeover.
        record.epoch = 1;
        record.durable = { input: request.input, attempt: 1, historyStoreId };
        if (historyUrls.length > 0) record.durable.historyUrls = historyUrls;
        if (context.origin !== undefined) record.durable.historyOrigin = context.origin;
      }
      const history = new SessionHistory(this.store, sessionId, historyUrls, this.#fetchHistory, historyStoreId, {
        localOrigin: context.origin,
        maxBytes: this.limits.maxHistoryBytes,
        logger: this.logger,
        run: started,
        instanceId: this.instanceId,
      });
      // A sync run's id reaches its client with the answer: until then nobody else can read or cancel it.
      const unobserved = request.mode !== "async" && request.mode !== "stream";
      const firstEvents: Event[] = [
        { type: "run.created", run },
        { type: "run.in-progress", run: started },
      ];
      // Nobody can ask for such a run before it settles, so it is stored by its first write: for
      // most, its end (one store call per run). A durable run is stored first: it must be adoptable.
      // So is any run while the store looks down: the client gets its 503 before the agent acts.
      const deferred = unobserved && !agent.durable && !this.#storeHealth.down;
      const executor = new RunExecutor({
        store: this.store,
        agent,
        record,
        input: request.input,
        history,
        outageMs: this.outageMs,
        maxEvents: this.limits.maxEventsPerRun,
        maxDurationMs: this.limits.maxRunDurationMs,
        watch: this.watch,
        unobserved,
        durable: agent.durable ? { epoch: 1, attempt: 1, steps: [], log: NEW_LOG } : undefined,
        maxStepBytes: this.limits.maxStepBytes,
        span,
        logger: this.logger,
        instanceId: this.instanceId,
        unstored: deferred ? firstEvents : undefined,
      });
      // Listening before the run exists, so that no cancel can slip past the executor.
      if (!unobserved) await executor.listen();
      let created = true;
      try {
        if (!deferred) created = await this.store.createRun(record, firstEvents);
      } catch (error) {
        await executor.stopListening();
        abandonRunSpan(span, error);
        this.#failIfLanded(error, record);
        throw error;
      }
      if (!created) {
        await executor.stopListening();
        const collision = new ACPError({ code: "server_error", message: "Run id collision; retry" });
        abandonRunSpan(span, collision);
        throw collision;
      }
      this.metrics?.runStarted(agent.manifest.name);
      // The bookkeeping at its end is done by the executor itself: no promise chained for it.
      const done = executor.execute(() => {
        if (executor.endUnwritten && executor.stored)
          this.#abandoned.set(run.run_id, agent.durable ? undefined : END_UNWRITTEN);
        // A run never stored has nothing for a sweep to end, unless a create that timed out lands later.
        else if (executor.endUnwritten) this.#failIfLanded(executor.unstoredFailure, record);
        this.#local.delete(run.run_id);
        this.#admitted -= 1;
        this.metrics?.runReleased(executor.record.run);
      });
      held = false;
      this.#local.set(run.run_id, { executor, done });
      // The client's answer is the run as it was created.
      return { ...record, run };
    } catch (error) {
      if (held) this.#admitted -= 1;
      throw error;
    }
  }

  /**
   * A create that timed out may still land later, as a run nobody executes (its owner is alive,
   * so no sweep would end it). Once the call has landed (or failed for good), such a run is failed.
   */
  #failIfLanded(error: unknown, record: StoredRun): void {
    const landed = whenLanded(error);
    if (landed === undefined) return;
    const runId = record.run.run_id;
    const message = "The run could not be started: the store answered too late, and the client was told so";
    void landed
      .then(() => this.store.getRun(runId))
      .then((stored) => {
        // Still as created: nobody ever ran it (a run created ended has nothing left to do).
        if (stored === undefined || stored.version !== 1 || isTerminal(stored.run.status)) return;
        const run: Run = {
          ...stored.run,
          status: "failed",
          error: { code: "server_error", message },
          finished_at: now(),
        };
        return this.store.updateRun(runId, stored.version, { ...stored, run }, [{ type: "run.failed", run }]);
      })
      .catch(() => this.#abandoned.set(runId, message));
  }

  /**
   * The run as clients see it; with a `tenant`, a run of another tenant is not found, exactly as
   * an unknown one. The output of a run that has not settled comes from its event log (the
   * record's is written at transitions only): its completed messages, then the one it streams.
   */
  async getRun(runId: string, tenant?: string): Promise<StoredRun> {
    return this.#withOutput(await this.getRecord(runId, tenant));
  }

  async #withOutput(record: StoredRun): Promise<StoredRun> {
    if (isSettled(record.run.status)) {
      // An awaiting run goes on after its resume, and its log with it: only an ended one is done with.
      if (isTerminal(record.run.status)) this.#outputs.forget(record.run.run_id);
      return record;
    }
    const output = await this.#outputs.read(record.run);
    return { ...record, run: { ...record.run, output } };
  }

  /** The run's record as stored (see {@link getRun}): the output of a running run as of its last transition. */
  async getRecord(runId: string, tenant?: string): Promise<StoredRun> {
    const record = await this.store.getRun(runId);
    if (!record || !visibleTo(record, tenant)) throw notFound(`Run ${runId} not found`);
    return record;
  }

  /**
   * Waits until the run ends or awaits, in a version of at least `minVersion`; the record then.
   * A run executing here is watched in process; any other through the store.
   */
  whenSettled(runId: string, minVersion: number, signal?: AbortSignal): Promise<StoredRun> {
    const executor = this.#local.get(runId)?.executor;
    // A run executing here settles through its executor: no store read, no promise besides its own.
    if (executor === undefined) return this.#whenStoredSettled(runId, minVersion, signal);
    return executor.whenSettled(minVersion, () => this.#whenStoredSettled(runId, minVersion, signal));
  }

  async #whenStoredSettled(runId: string, minVersion: number, signal: AbortSignal | undefined): Promise<StoredRun> {
    const record = await waitForRecord(
      this.store,
      runId,
      (stored) => stored.version >= minVersion && isSettled(stored.run.status),
      { signal, watch: this.watch },
    );
    if (!record) throw notFound(`Run ${runId} not found`);
    return record;
  }

  /**
   * Hands `resume` to the awaiting run, wherever its agent runs: one compare-and-set from
   * `awaiting` to `in-progress`, so of two concurrent resumes exactly one wins.
   * @returns the new record and the seq of its `run.in-progress` event.
   */
  async resume(runId: string, resume: AwaitResume, tenant?: string): Promise<{ record: StoredRun; seq: number }> {
    checkMessageParts(resume.message, this.limits, "await_resume.message");
    const first = await this.getRecord(runId, tenant);
    return inRunTrace("resume", first, this.instanceId, () => this.#resume(runId, resume, tenant, first));
  }

  async #resume(
    runId: string,
    resume: AwaitResume,
    tenant: string | undefined,
    first: StoredRun,
  ): Promise<{ record: StoredRun; seq: number }> {
    for (let current = first; ; current = await this.getRecord(runId, tenant)) {
      const request = current.run.await_request;
      if (current.run.status !== "awaiting" || !request) {
        throw new ACPError({
          code: "invalid_input",
          message: `Run ${runId} is not awaiting (its status is ${current.run.status})`,
          status: 403,
        });
      }
      if (request.type !== resume.type) {
        throw new ACPError({
          code: "invalid_input",
          message: `Run ${runId} awaits a ${request.type}, not a ${resume.type}`,
          status: 403,
        });
      }
      // A durable run whose owner is gone (drained, or dead) is adopted here first, then resumed.
      if (current.durable !== undefined && (await this.#ownerGone(current))) {
        const adopted = await this.#adopt(current);
        // Its replay failed here: asking again would only take it over and fail again, forever.
        if (adopted === "failed")
          throw new ACPError({
            code: "server_error",
            message: `Run ${runId} could not be taken over by this instance; retry later`,
            status: 503,
          });
        if (adopted !== "declined") continue;
      }
      const run: Run = { ...current.run, status: "in-progress", await_request: null };
      const result = await this.store.updateRun(runId, current.version, { ...current, run, resume }, [
        { type: "run.in-progress", run },
      ]);
      if (result.ok) return { record: result.record, seq: result.lastSeq };
    }
  }

  /** Asks the run to stop, wherever its agent runs. A finished run cannot be cancelled. */
  async cancel(runId: string, tenant?: string): Promise<StoredRun> {
    const local = this.#local.get(runId)?.executor;
    // A sync run not stored yet (its client went away): only this instance knows it.
    if (local !== undefined && !local.stored && visibleTo(local.record, tenant)) {
      local.cancel();
      // As a stored run's cancel answers: the run is cancelling (it ends cancelled).
      const { record } = local;
      return isTerminal(record.run.status) ? record : { ...record, run: { ...record.run, status: "cancelling" } };
    }
    const first = await this.getRecord(runId, tenant);
    return inRunTrace("cancel", first, this.instanceId, () => this.#cancel(runId, tenant, first));
  }

  async #cancel(runId: string, tenant: string | undefined, first: StoredRun): Promise<StoredRun> {
    for (let current = first; ; current = await this.getRecord(runId, tenant)) {
      const status = current.run.status;
      if (isTerminal(status)) {
        throw new ACPError({
          code: "invalid_input",
          message: `Run ${runId} has already finished (its status is ${status}) and cannot be cancelled`,
          status: 403,
        });
      }
      if (status === "cancelling") return this.#withOutput(current);
      const next: StoredRun = { ...current, run: { ...current.run, status: "cancelling" } };
      const result = await this.store.updateRun(runId, current.version, next, []);
      if (result.ok) {
        // A run of ours hears it at once, even a sync run that does not listen to the store.
        this.#local.get(runId)?.executor.cancel();
        return this.#withOutput(result.record);
      }
    }
  }

  /** Whether the run's owner is another instance that is gone: released (owner "") or without a lease. */
  async #ownerGone(record: StoredRun): Promise<boolean> {
    if (record.owner === this.instanceId) return false;
    return record.owner === "" || !(await this.store.isAlive(record.owner));
  }

  /**
   * Takes a durable run over and replays its handler here: one compare-and-set makes this
   * instance its owner with the next epoch (fencing the former owner's writes) and the next
   * attempt; then the log and the recorded steps are read (nothing can be added to them by the
   * former owner any more) and the handler replays from them.
   * @returns `"adopted"`; `"conflict"` when the record changed meanwhile (read it again);
   * `"declined"` when this instance cannot take it (draining, at capacity, agent not durable here);
   * `"failed"` when it was taken but could not be replayed (it is handed back).
   */
  async #adopt(record: StoredRun): Promise<"adopted" | "conflict" | "declined" | "failed"> {
    const agent = this.#agents.get(record.run.agent_name);
    const durable = record.durable;
    if (this.#draining || !agent?.durable || durable === undefined) return "declined";
    // Owning a run needs a lease: a resume may come before this instance's first heartbeat.
    await this.start();
    if (this.#admitted >= this.limits.maxConcurrentRuns) return "declined";
    this.#admitted += 1;
    const runId = record.run.run_id;
    const epoch = (record.epoch ?? 1) + 1;
    const next: StoredRun = {
      ...record,
      owner: this.instanceId,
      epoch,
      durable: { ...durable, attempt: durable.attempt + 1 },
    };
    let adopted: StoredRun;
    try {
      const result = await this.store.updateRun(runId, record.version, next, []);
      if (!result.ok) {
        this.#admitted -= 1;
        return "conflict";
      }
      adopted = result.record;
      this.metrics?.orphaned("adopted");
    } catch (error) {
      this.#admitted -= 1;
      throw error;
    }
    const attempt = next.durable!.attempt;
    // In the run's trace, as a child of its first span (which may have died with its instance).
    const span = startRunSpan(record.run, this.instanceId, record, attempt);
    let executor: RunExecutor;
    try {
      const deadline = Date.now() + this.outageMs;
      const log = await retryOutage(() => readLog(this.store, runId), deadline);
      const steps = await retryOutage(() => this.store.readSteps(runId), deadline);
      const sessionId = record.run.session_id ?? randomUUID();
      const history = new SessionHistory(
        this.store,
        sessionId,
        durable.historyUrls ?? [],
        this.#fetchHistory,
        durable.historyStoreId ?? sessionId,
        {
          localOrigin: durable.historyOrigin,
          maxBytes: this.limits.maxHistoryBytes,
          logger: this.logger,
          run: record.run,
          instanceId: this.instanceId,
        },
      );
      executor = new RunExecutor({
        store: this.store,
        agent,
        record: adopted,
        input: durable.input,
        history,
        outageMs: this.outageMs,
        maxEvents: this.limits.maxEventsPerRun,
        maxDurationMs: this.limits.maxRunDurationMs,
        watch: this.watch,
        durable: { epoch, attempt, steps, log },
        maxStepBytes: this.limits.maxStepBytes,
        span,
        logger: this.logger,
        instanceId: this.instanceId,
      });
      await executor.listen();
    } catch (error) {
      this.#admitted -= 1;
      abandonRunSpan(span, error);
      // Owned here but not driven: hand it back (owner "") for the next sweep, here or elsewhere.
      this.logger.error(
        { ...runFields(record.run, this.instanceId), err: error },
        "could not replay the run after taking it over; it is handed off",
      );
      await this.store
        .updateRun(runId, adopted.version, { ...adopted, owner: "" }, [])
        .catch(() => this.#abandoned.set(runId, undefined));
      return "failed";
    }
    this.metrics?.runHeld(agent.manifest.name);
    const done = executor.execute(() => {
      if (executor.endUnwritten) this.#abandoned.set(runId, undefined);
      this.#local.delete(runId);
      this.#admitted -= 1;
      this.metrics?.runReleased(executor.record.run);
    });
    this.#local.set(runId, { executor, done });
    return "adopted";
  }

  /**
   * Fails the runs whose owning instance stopped sending heartbeats (a cancelling one is
   * cancelled), as the store lists them (`listOrphanedRuns`); a durable run (not cancelling) is
   * adopted instead, as is one that a draining instance released (owner ""). Any number of
   * instances may sweep at once: compare-and-set picks one writer; within one instance, a call
   * while a sweep is in progress shares it. A run whose record cannot be read or ended is
   * logged and skipped.
   * @returns how many runs the sweep ended or adopted.
   */
  sweepOrphans(): Promise<number> {
    // One sweep at a time: a slow store must not pile sweeps up, each reading the same orphans.
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    // Runs waited for that no sweep has listed for a long while were ended or adopted elsewhere.
    const forgotten = Date.now() - 2 * UNSERVED_GRACE_LEASES * this.leaseMs;
    for (const [runId, since] of this.#unserved) if (since < forgotten) this.#unserved.delete(runId);
    // This instance's own abandoned runs first: while it lives, no other sweep touches them.
    const ended = await this.#eachRun([...this.#abandoned.keys()], (runId) => this.#endAbandoned(runId));
    return (
      ended + (await this.#eachRun(await this.store.listOrphanedRuns(SWEEP_BATCH), (runId) => this.#takeOver(runId)))
    );
  }

  /** Calls `fn` on each run in turn; how many calls returned true. */
  async #eachRun(runIds: string[], fn: (runId: string) => Promise<boolean>): Promise<number> {
    let ended = 0;
    for (const runId of runIds) {
      try {
        if (await fn(runId)) ended += 1;
      } catch (error) {
        // Through an outage every call would fail (each after a timeout): stop, the next sweep retries.
        if (isStoreOutage(error)) throw error;
        // A record that cannot be read or ended (malformed, refused) must not stop the others.
        this.logger.error(
          { run_id: runId, instance_id: this.instanceId, reason: (error as Error).message },
          "orphan sweep: run skipped",
        );
      }
    }
    return ended;
  }

  /** Fails (or hands off) one run of {@link #abandoned} if still owned here; whether this call ended it. */
  async #endAbandoned(runId: string): Promise<boolean> {
    const message = this.#abandoned.get(runId);
    const record = await this.store.getRun(runId);
    if (!record || isTerminal(record.run.status) || record.owner !== this.instanceId || this.#local.has(runId)) {
      // Ended or moved meanwhile: nothing left to do here.
      this.#abandoned.delete(runId);
      return false;
    }
    if (message === undefined) {
      const result = await this.store.updateRun(runId, record.version, { ...record, owner: "" }, []);
      if (result.ok) this.#abandoned.delete(runId);
      return false;
    }
    const status = await this.#end(record, message);
    if (status !== undefined) this.#abandoned.delete(runId);
    return status !== undefined;
  }

  /** Ends one candidate orphan if it still is one; whether this call ended it. */
  async #takeOver(runId: string): Promise<boolean> {
    const record = await this.store.getRun(runId);
    if (!record || isTerminal(record.run.status) || record.owner === this.instanceId) {
      this.#unserved.delete(runId);
      return false;
    }
    // Asked for each run, right before its takeover: an owner that came back keeps its runs.
    if (!(await this.#ownerGone(record))) return false;
    let message = "The server instance running this run was lost (its lease ran out); the run cannot continue";
    if (record.durable !== undefined && record.run.status !== "cancelling") {
      // Left for another instance (or a later sweep) when this one cannot take it now.
      if (this.#agents.get(record.run.agent_name)?.durable) return (await this.#adopt(record)) === "adopted";
      // Another instance may serve its agent (a deploy in progress): it gets a while to adopt it.
      const now = Date.now();
      const since = this.#unserved.get(runId) ?? now;
      this.#unserved.set(runId, since);
      if (now - since < UNSERVED_GRACE_LEASES * this.leaseMs) return false;
      this.#unserved.delete(runId);
      message = `The server instance running this run was lost, and no instance serving agent "${record.run.agent_name}" adopted it; the run cannot continue`;
    }
    const status = await this.#end(record, message);
    if (status !== undefined) this.metrics?.orphaned(status);
    return status !== undefined;
  }

  /** Ends a run nobody drives: cancelled if cancelling, else failed with `message`; the status written, if it was. */
  async #end(record: StoredRun, message: string): Promise<"cancelled" | "failed" | undefined> {
    const runId = record.run.run_id;
    const status = record.run.status === "cancelling" ? "cancelled" : "failed";
    const error: ErrorModel | null = status === "failed" ? { code: "server_error", message } : null;
    // The record's output ends at the run's last transition; its log holds the messages completed since.
    const output = await outputFromLog(this.store, runId, { open: false });
    const run: Run = { ...record.run, status, output, error, await_request: null, finished_at: now() };
    const result = await this.store.updateRun(runId, record.version, { ...record, run, resume: null }, [
      { type: `run.${status}`, run },
    ]);
    return result.ok ? status : undefined;
  }

  /**
   * Graceful shutdown: take no new runs, let local runs finish until `deadlineMs`, then fail the
   * rest with a clear error, and stop the timers. Durable runs are handed off instead (their
   * owner becomes "", for another instance to adopt): at once when they await a resume, at the
   * deadline when they run. The store is left open (its owner closes it).
   */
  async shutdown({ deadlineMs = RUNTIME_DEFAULTS.shutdownDeadlineMs }: ShutdownOptions = {}): Promise<void> {
    this.#draining = true;
    for (const local of this.#local.values()) local.executor.handOff();
    const all = (): Promise<unknown> => Promise.allSettled([...this.#local.values()].map((local) => local.done));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    await Promise.race([all(), deadline]);
    clearTimeout(timer);
    for (const local of this.#local.values()) {
      if (local.executor.durable) local.executor.release();
      else
        local.executor.abort({
          code: "server_error",
          message: "The server instance shut down before the run finished",
        });
    }
    // Writing the ends gets a short grace; through a store outage, give up rather than hang.
    const giveUp = setTimeout(() => {
      for (const local of this.#local.values()) local.executor.giveUp();
    }, 2000);
    await all();
    clearTimeout(giveUp);
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.watch.stop();
  }
}

/**
 * Runs one agent invocation on the instance that owns it: pulls the handler's generator, turns
 * what it yields into ACP events, and moves the run through its states with compare-and-set
 * writes, so that a cancel or resume arriving through any instance is seen here.
 */
import { randomUUID } from "node:crypto";
import type { Span } from "@opentelemetry/api";
import type { Agent, AgentContext, AgentGenerator, Yielded } from "../agent.ts";
import { ACPError, toErrorModel } from "../errors.ts";
import { eventLimitError, LIMIT_DEFAULTS } from "../limits.ts";
import { consoleLogger, type Logger, type RunLogFields, runFields } from "../logger.ts";
import {
  type AwaitResume,
  type ErrorModel,
  type Event,
  isSettled,
  isTerminal,
  type Message,
  type MessagePart,
  type Run,
} from "../models.ts";
import type { SessionHistory } from "../session.ts";
import {
  type ChangeKind,
  type HistoryAppend,
  isStoreRefusal,
  type Store,
  type StoredRun,
  type Unsubscribe,
  type UpdateResult,
} from "../store.ts";
import { endRunSpan, inSpan, inTrace } from "../trace/tracing.ts";
import { Cancellation } from "./cancellation.ts";
import { DIVERGED, type DurableInit, DurableSteps, divergedError, type LogState } from "./durable.ts";
import { EventWriter, RunGoneError } from "./event-writer.ts";
import { waitForRecord } from "./follow.ts";
import { isStoreOutage, retryOutage, retryOutageAfter, waitLanded, whenLanded } from "./guarded-store.ts";
import { now } from "./now.ts";
import { ended, stamped } from "./one-shape.ts";
import { RunContext } from "./run-context.ts";
import { RunWatch, WATCH_CHECK_MS } from "./run-watch.ts";
import { sameValue } from "./same-value.ts";
import { type Classified, classify, storable } from "./yielded.ts";

/** Above this many unwritten events the executor waits for the store before pulling more. */
const MAX_BACKLOG = 1024;

/** How long one attempt to create a run waits for an earlier attempt that timed out to land. */
const LANDED_WAIT_MS = 1000;

/** How long the end of a run is retried through a store outage before it is given up. */
const FINISH_RETRY_MS = 10 * 60_000;

/**
 * How late a lost notification (a pub/sub reconnect, a NOTIFY lost after its commit) lets a
 * running or awaiting run see a cancel or a resume, at most: the period of its instance's
 * {@link RunWatch}, which checks every watched run with one store call and makes a run re-read
 * its record only when its version moved.
 */
export const CANCEL_CHECK_MS = WATCH_CHECK_MS;

/** The error of a run whose end the store refused to hold with its output (see {@link RunExecutor}). */
const REFUSED_END: ErrorModel = {
  code: "server_error",
  message: "The store refused a value of this run's output; the run failed and its output was not kept",
};

type Outcome = { status: "completed" } | { status: "failed"; error: ErrorModel } | { status: "cancelled" };

const COMPLETED: Outcome = { status: "completed" };
const CANCELLED: Outcome = { status: "cancelled" };

function ignore(): void {}

/** The error a run fails with when its handler threw `error`. */
function failure(error: unknown): ErrorModel {
  if (isStoreRefusal(error))
    return { code: "server_error", message: "The store refused a value the agent produced; the run cannot continue" };
  if (isStoreOutage(error))
    return { code: "server_error", message: "The store was unavailable for too long; the run could not continue" };
  // An ACPError's message and data come from the agent: stored text like its output.
  return storable(toErrorModel(error, "The agent failed with an internal error"));
}

/** A caller waiting for the run to settle in a version of at least `minVersion`. */
interface Waiter {
  minVersion: number;
  resolve: (record: unknown) => void;
  reject: (error: unknown) => void;
  /** What the waiter gets when the executor stops knowing; `undefined` without it. */
  orElse: (() => Promise<unknown>) | undefined;
}

/** The handler's result as a generator: an async function's value (or array of values) is yielded once. */
function toGenerator(result: ReturnType<Agent["handler"]>): AgentGenerator {
  if (result && typeof result === "object" && typeof (result as AgentGenerator).next === "function") {
    const iterator = result as AgentGenerator;
    if (typeof iterator[Symbol.asyncIterator] === "function") return iterator;
  }
  return (async function* fromValue() {
    const value = await (result as Promise<Yielded | Yielded[]>);
    if (Array.isArray(value)) yield* value;
    else yield value;
  })();
}

export interface ExecutorInit {
  store: Store;
  agent: Agent;
  record: StoredRun;
  input: Message[];
  history: SessionHistory;
  /** How long event writes are retried through a store outage before the run fails. */
  outageMs: number;
  /** Most events the handler's output may produce; past it the run fails. @default LIMIT_DEFAULTS.maxEventsPerRun */
  maxEvents?: number;
  /**
   * The run is known to its creator only (a sync run until it settles: its id goes out with the
   * answer), so nobody can read or cancel it yet. Its writes are then gathered: no subscription,
   * and events written at the end of each event-loop turn (the store's `UpdateOptions.unobserved`).
   * It stops being unobserved when it first awaits. @default false
   */
  unobserved?: boolean;
  /**
   * The instance's periodic check of the runs it watches (see {@link RunWatch}); the runtime
   * passes its own. @default a RunWatch of this run alone, every `cancelCheckMs`
   */
  watch?: RunWatch;
  /** The period of the RunWatch made when `watch` is not given (tests shorten it). @default CANCEL_CHECK_MS */
  cancelCheckMs?: number;
  /** Past this long after it starts, the run is cancelled (`limits.maxRunDurationMs`). @default undefined (no limit) */
  maxDurationMs?: number;
  /**
   * The run is durable: its steps and resumes are recorded, its writes fenced by its epoch; after
   * a takeover, the handler is replayed from what was recorded. @default undefined (not durable)
   */
  durable?: DurableInit;
  /** See `limits.maxStepBytes`. @default LIMIT_DEFAULTS.maxStepBytes */
  maxStepBytes?: number;
  /**
   * The run's `invoke_agent` span: active while the handler and the run's writes go on, ended
   * with the run's status. @default undefined (no span)
   */
  span?: Span;
  /** Where the run's log lines go. @default consoleLogger */
  logger?: Logger;
  /**
   * The run is not stored yet: its first write creates it, with these first events. An
   * unobserved run that settles without awaiting or spanning event-loop turns (most sync runs)
   * is then stored once, ended, with its log and session history: one store call for the whole
   * run. @default undefined (the run is stored already)
   */
  unstored?: Event[];
  /** The instance running it, named in its log lines. @default undefined (not named) */
  instanceId?: string;
}

export class RunExecutor {
  readonly #store: Store;
  readonly #agent: Agent;
  readonly #input: Message[];
  readonly #history: SessionHistory;
  readonly #abort = new Cancellation();
  /** Aborted when the server gives up on writing this run's end (shutdown). */
  readonly #giveUp = new Cancellation();
  readonly #outageMs: number;
  readonly #writer: EventWriter;
  readonly #role: string;
  readonly #span: Span | undefined;
  readonly #logger: Logger;
  readonly #instanceId: string | undefined;
  #record: StoredRun;
  /** The agent message being streamed part by part, if any. */
  #open: Message | undefined;
  #checking = false;
  /** The run waits for a resume: the wait reads the record itself. */
  #awaiting = false;
  readonly #watch: RunWatch;
  /** Stops this run's periodic check (see {@link CANCEL_CHECK_MS}), once started. */
  #stopWatching: (() => void) | undefined;
  readonly #maxDurationMs: number | undefined;
  #unsubscribe: Unsubscribe | undefined;
  #recheck = false;
  /** The version our compare-and-set in flight would write (0 when none is). */
  #writingVersion = 0;
  #waiters: Waiter[] = [];
  /** Set when the server, not a client, stopped the run: it ends failed, not cancelled. */
  #stopError: ErrorModel | undefined;
  readonly #maxEvents: number;
  /** Events the handler's output has produced so far (status events not counted). */
  #produced = 0;
  /** See {@link ExecutorInit.unobserved}. */
  #unobserved: boolean;
  /** Completed messages whose events are written or queued but which the record's output lacks: it gets them at the next transition. */
  #unsavedOutput: Message[] = [];
  // Durable runs only (see ExecutorInit.durable).
  /** The ownership epoch held; `undefined` for a run that is not durable. */
  readonly #epoch: number | undefined;
  readonly #steps: DurableSteps | undefined;
  readonly #attempt: number;
  /** Handler-output events of a replay still to drop: the log holds them already. */
  #skip = 0;
  /** How many handler-output events the log held at the takeover. */
  #logged = 0;
  /** The message the log was streaming at the takeover (see LogState.open). */
  #logOpen: LogState["open"];
  /** How many times the handler awaited so far, and how many awaits the log held at the takeover. */
  #awaits = 0;
  readonly #loggedAwaits: number;
  /** Another instance drives the run now (or this one handed it off): write nothing more. */
  #fenced = false;
  /** Handed off (drain): the run's owner becomes "" once the handler stopped. */
  #released = false;
  /** Hand the run off as soon as it awaits (drain). */
  #handOffAtAwait = false;
  /** The run's end (or hand-off) could not be written, even after the retries. */
  #endUnwritten = false;
  /** The handler's generator has returned: there is nothing to stop. */
  #handlerEnded = false;
  /** The first events of a run not stored yet (see {@link ExecutorInit.unstored}); `undefined` once it is. */
  #unstored: Event[] | undefined;
  /** The creation of the run in the store, while it is in flight. */
  #storing: Promise<void> | undefined;
  /** Why a run that was never stored could not be: its waiters get this error. */
  #unstoredFailure: unknown;

  constructor({
    store,
    agent,
    record,
    input,
    history,
    outageMs,
    maxEvents = LIMIT_DEFAULTS.maxEventsPerRun,
    unobserved = false,
    watch,
    cancelCheckMs = CANCEL_CHECK_MS,
    maxDurationMs,
    durable,
    maxStepBytes = LIMIT_DEFAULTS.maxStepBytes,
    span,
    logger = consoleLogger,
    instanceId,
    unstored,
  }: ExecutorInit) {
    this.#unstored = unstored;
    this.#logger = logger;
    this.#instanceId = instanceId;
    this.#span = span;
    this.#watch = watch ?? new RunWatch(store, cancelCheckMs, logger);
    this.#maxDurationMs = maxDurationMs;
    this.#maxEvents = maxEvents;
    this.#unobserved = unobserved;
    this.#store = store;
    this.#agent = agent;
    this.#record = record;
    this.#input = input;
    this.#history = history;
    this.#role = `agent/${agent.manifest.name}`;
    this.#outageMs = outageMs;
    // createRun stored exactly two events: run.created and run.in-progress.
    this.#writer = new EventWriter(store, record.run.run_id, durable?.log.lastSeq ?? 2, outageMs);
    this.#writer.untilTurnEnds = unobserved;
    // A run not stored yet is created before its first append.
    if (unstored !== undefined) this.#writer.prepare = () => this.#ensureStored();
    this.#epoch = durable?.epoch;
    this.#attempt = durable?.attempt ?? 1;
    this.#loggedAwaits = durable?.log.awaits ?? 0;
    if (durable === undefined) {
      this.#steps = undefined;
      return;
    }
    this.#writer.epoch = durable.epoch;
    this.#writer.onGone = () => this.#lose();
    this.#skip = durable.log.handlerEvents;
    this.#logged = durable.log.handlerEvents;
    this.#logOpen = durable.log.open;
    // Messages the log completed after the record's output was last written.
    this.#unsavedOutput = durable.log.output.slice(record.run.output.length);
    this.#steps = new DurableSteps(
      {
        store,
        runId: record.run.run_id,
        epoch: durable.epoch,
        outageMs,
        maxStepBytes,
        cancellation: this.#abort,
        diverged: (detail) => this.#diverge(detail),
        lost: () => this.#lose(),
      },
      durable.steps,
    );
  }

  /** Whether the run is durable (handed off, not failed, when the instance drains). */
  get durable(): boolean {
    return this.#epoch !== undefined;
  }

  /**
   * Drain: a durable run is handed off when it awaits (at once if it awaits now): its handler
   * stops and its owner becomes "", for another instance to adopt. No-op for other runs.
   */
  handOff(): void {
    if (this.#epoch === undefined) return;
    this.#handOffAtAwait = true;
    if (this.#awaiting) this.release();
  }

  /** Stops a durable run's handler without writing its end, and hands the run off (owner ""). */
  release(): void {
    if (this.#epoch === undefined || this.#fenced) return;
    this.#released = true;
    this.#lose();
  }

  /** This instance drives the run no more: the handler is aborted and nothing more is written. */
  #lose(): void {
    this.#fenced = true;
    this.#abort.abort();
  }

  /** The fields of a line about this run, with `extra` (an error under `err`, say). */
  #fields(extra?: object): RunLogFields {
    const fields = runFields(this.#record.run, this.#instanceId);
    return extra === undefined ? fields : Object.assign(fields, extra);
  }

  /** The replay did not do what was recorded: the run fails. */
  #diverge(detail: string): void {
    if (this.#stopError === undefined) this.#logger.error(this.#fields(), `durable run diverged on replay (${detail})`);
    // The detail goes with the error, so the client learns which step or event differed.
    this.abort({ ...DIVERGED, data: { detail } });
  }

  /** Whether `record` shows that another instance (or none) owns the run now. */
  #notMine(record: StoredRun): boolean {
    return record.owner !== this.#record.owner || (record.epoch ?? 1) !== this.#epoch;
  }

  /** Drops the closing event of a replayed message that the log holds already. */
  #dropReplayed(closed: { events: Event[]; output: Message[] }): { events: Event[]; output: Message[] } {
    if (this.#skip === 0 || closed.events.length === 0) return closed;
    this.#skip -= closed.events.length;
    return { events: [], output: [] };
  }

  /** Queues an event of the handler's output; a replay drops those the log holds. Whether it was queued. */
  #push(event: Event): boolean {
    if (this.#skip > 0) {
      this.#skip -= 1;
      return false;
    }
    this.#writer.push(event);
    return true;
  }

  get runId(): string {
    return this.#record.run.run_id;
  }

  /** The run's record as this executor last wrote or read it (its end, once `execute()` resolved). */
  get record(): StoredRun {
    return this.#record;
  }

  /** Stops the handler and fails the run with `error` (a shutdown past its deadline, say). */
  abort(error: ErrorModel): void {
    this.#stopError = error;
    this.#abort.abort();
  }

  /** Stops the handler because a client cancelled the run (already marked `cancelling` in the store). */
  cancel(): void {
    this.#abort.abort();
  }

  /** Why a run never stored could not be stored (a timeout's may land yet); `undefined` otherwise. */
  get unstoredFailure(): unknown {
    return this.#unstoredFailure;
  }

  /** Whether the run is in the store (see {@link ExecutorInit.unstored}). */
  get stored(): boolean {
    return this.#unstored === undefined;
  }

  /** Whether {@link execute} gave up writing the run's end (or hand-off): the run is left owned by this instance. */
  get endUnwritten(): boolean {
    return this.#endUnwritten;
  }

  /** Stops retrying through a store outage: the run's end is written now or never. */
  giveUp(): void {
    this.#giveUp.abort();
  }

  /**
   * Starts watching the run for a cancel or an end decided elsewhere. Called before the run is
   * stored, so that no change can come before it. Without a working subscription (store outage)
   * the run still goes on; it then sees a cancel at its next transition.
   */
  listen(): Promise<void> {
    return this.#store.subscribe(this.runId, this.#onChange).then(
      (unsubscribe) => {
        this.#unsubscribe = unsubscribe;
      },
      () => {
        this.#unsubscribe = undefined;
      },
    );
  }

  stopListening(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    return unsubscribe === undefined ? Promise.resolve() : unsubscribe().catch(ignore);
  }

  /**
   * Runs the agent to its end; never rejects (failures are recorded on the run). `onEnd` is
   * called once everything is over (the run's span ended), just before the promise resolves:
   * the runtime's bookkeeping, without a promise of its own.
   */
  execute(onEnd?: () => void): Promise<void> {
    const span = this.#span;
    // In the run's span when it belongs to a trace: the handler's own spans and the store's are its
    // children (or, when the sampler dropped it, are dropped with it).
    return span !== undefined && inTrace(span) ? inSpan(span, () => this.#execute(onEnd)) : this.#execute(onEnd);
  }

  async #execute(onEnd: (() => void) | undefined): Promise<void> {
    const maxDurationMs = this.#maxDurationMs;
    const deadline =
      maxDurationMs === undefined
        ? undefined
        : setTimeout(() => {
            if (this.#abort.aborted) return;
            this.#logger.warn(
              this.#fields(),
              `the run ran past maxRunDurationMs (${maxDurationMs} ms): it is cancelled`,
            );
            this.#abort.abort();
          }, maxDurationMs).unref();
    if (!this.#unobserved) this.#startChecks();
    try {
      const ran = await this.#run();
      // Read once the handler stopped: a stop that came meanwhile (a takeover, a shutdown) wins.
      const outcome =
        ran === undefined || this.#fenced
          ? undefined
          : this.#stopError === undefined
            ? ran
            : { status: "failed" as const, error: this.#stopError };
      if (outcome !== undefined) {
        try {
          await this.#finish(outcome);
        } catch (error) {
          if (!isStoreRefusal(error)) throw error;
          await this.#finishRefused(error);
        }
      } else if (this.#released) await this.#writeRelease();
    } catch (error) {
      if (this.#unstored !== undefined) this.#unstoredFailure = error;
      if (!(error instanceof RunGoneError)) {
        this.#endUnwritten = true;
        this.#logger.error(this.#fields({ err: error }), "could not record the run's end");
      }
    } finally {
      clearTimeout(deadline);
      this.#stopWatching?.();
      // Only when subscribed: a run that stayed unobserved (most sync runs) never was.
      if (this.#unsubscribe !== undefined) await this.stopListening();
      this.#wakeWaiters(undefined);
      if (this.#span !== undefined) endRunSpan(this.#span, this.#record.run);
      onEnd?.();
    }
  }

  /**
   * Joins the instance's periodic check, which bounds how late a cancel is seen without a
   * notification (see {@link CANCEL_CHECK_MS}): the record is re-read only when its version moved.
   * Started once the run is stored (the check would not find it before).
   */
  #startChecks(): void {
    this.#stopWatching ??= this.#watch.add(this.runId, {
      check: (head) => {
        // The wait for a resume watches the record itself.
        if (this.#awaiting) return;
        if (head === undefined) this.#onChange(undefined);
        else this.#onChange("record", head.version);
      },
    });
  }

  /**
   * The record once the run has settled (ended or awaits) with a version of at least
   * `minVersion`. If this executor stops knowing (the run ended elsewhere), what `orElse`
   * resolves to (`undefined` without it): the caller's fallback costs no promise of its own.
   */
  whenSettled(minVersion: number): Promise<StoredRun | undefined>;
  whenSettled<T>(minVersion: number, orElse: () => Promise<T>): Promise<StoredRun | T>;
  whenSettled<T>(minVersion: number, orElse?: () => Promise<T>): Promise<StoredRun | T | undefined> {
    const record = this.#record;
    if (record.version >= minVersion && isSettled(record.run.status)) return Promise.resolve(record);
    return new Promise((resolve, reject) =>
      this.#waiters.push({ minVersion, resolve: resolve as Waiter["resolve"], reject, orElse }),
    );
  }

  /** Hands the new record to the waiters it satisfies; `undefined` releases them all. */
  #wakeWaiters(record: StoredRun | undefined): void {
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const waiter of this.#waiters) {
      // A run never stored cannot be waited for in the store: its waiters learn why it failed.
      if (record === undefined && this.#unstoredFailure !== undefined) waiter.reject(this.#unstoredFailure);
      else if (record === undefined) waiter.resolve(waiter.orElse?.());
      else if (record.version >= waiter.minVersion && isSettled(record.run.status)) waiter.resolve(record);
      else still.push(waiter);
    }
    this.#waiters = still;
  }

  /**
   * Runs the handler; the outcome it leads to, or undefined when the run ended elsewhere. Each
   * step of the handler is one `then` on its generator's promise (no promise per step besides
   * it); a cancel while a step is pending ends the run at once, without waiting for the handler.
   */
  #run(): Promise<Outcome | undefined> {
    return new Promise((resolve) => {
      const cancellation = this.#abort;
      let generator: AgentGenerator | undefined;
      /** A step of the handler is pending: a cancel ends the run now. */
      let pending = false;
      let settled = false;
      const end = (outcome: Outcome | undefined): void => {
        if (settled) return;
        settled = true;
        pending = false;
        stopListening();
        // A handler still busy (it ignored the signal) is told to stop; we do not wait for it.
        if (!this.#handlerEnded) generator?.return(undefined).catch(() => {});
        resolve(outcome);
      };
      const fail = (error: unknown): void => {
        if (settled) return;
        if (error instanceof RunGoneError) {
          if (this.#epoch !== undefined) this.#lose();
          end(undefined);
          return;
        }
        if (this.#fenced) {
          end(undefined);
          return;
        }
        const outcome: Outcome = this.#abort.aborted ? CANCELLED : { status: "failed", error: failure(error) };
        if (!(error instanceof ACPError)) this.#logger.error(this.#fields({ err: error }), "the run failed");
        end(outcome);
      };
      const stopListening = cancellation.onAbort(() => {
        if (pending) end(CANCELLED);
      });
      /** Pulls the handler's next value. */
      const next = (resume: AwaitResume | undefined): void => {
        if (settled) return;
        if (cancellation.aborted) {
          end(CANCELLED);
          return;
        }
        // Pending from before the call: a cancel during the handler's synchronous part ends the run.
        pending = true;
        let step: Promise<IteratorResult<Yielded>>;
        try {
          step = generator!.next(resume);
        } catch (error) {
          pending = false;
          fail(error);
          return;
        }
        step.then(took, (error: unknown) => {
          if (!pending) return;
          pending = false;
          fail(error);
        });
      };
      /** After an item: waits for the store when the backlog is long, then pulls the next. */
      const afterItem = (resume: AwaitResume | undefined): void => {
        if (this.#writer.backlog > MAX_BACKLOG) this.#writer.flush().then(() => next(resume), fail);
        else next(resume);
      };
      const took = (step: IteratorResult<Yielded>): void => {
        // Not pending any more: the run was cancelled meanwhile.
        if (!pending) return;
        pending = false;
        try {
          if (step.done) {
            this.#handlerEnded = true;
            if (this.#steps !== undefined) this.#checkReplayEnded();
            end(COMPLETED);
            return;
          }
          const item = classify(step.value, this.#role);
          this.#countEvents(item);
          switch (item.kind) {
            case "part":
              this.#emitPart(item.part);
              break;
            case "message":
              this.#completeMessage(item.message);
              break;
            case "await":
              this.#await(item.message).then(
                (resume) => (resume === undefined ? end(CANCELLED) : afterItem(resume)),
                fail,
              );
              return;
            case "generic":
              this.#push({ type: "generic", generic: item.generic });
              break;
            case "nothing":
              break;
          }
        } catch (error) {
          fail(error);
          return;
        }
        afterItem(undefined);
      };
      try {
        generator = toGenerator(this.#agent.handler(this.#input, this.#context()));
      } catch (error) {
        fail(error);
        return;
      }
      next(undefined);
    });
  }

  #context(): AgentContext {
    const steps = this.#steps;
    return steps === undefined
      ? new RunContext(this.runId, this.#history, this.#abort)
      : new RunContext(this.runId, this.#history, this.#abort, { attempt: this.#attempt, steps });
  }

  /**
   * Hands a released run off: its owner becomes "" (its epoch stays), so that another instance
   * adopts it. A run that ended or that another instance owns is left alone.
   */
  async #writeRelease(): Promise<void> {
    let current: StoredRun | undefined = this.#record;
    const mine = this.#record.owner;
    try {
      for (;;) {
        if (current === undefined || isTerminal(current.run.status)) return;
        if (current.owner !== mine || (current.epoch ?? 1) !== this.#epoch) return;
        const result = await this.#store.updateRun(this.runId, current.version, { ...current, owner: "" }, []);
        if (result.ok) return;
        current = result.record;
      }
    } catch (error) {
      // Its owner's lease runs out soon (the instance is going away): another instance adopts it then.
      this.#logger.error(
        this.#fields({ err: error }),
        "could not hand the run off; it is adopted once this instance's lease runs out",
      );
    }
  }

  /** Watches for a cancel (or an end decided elsewhere) while the agent runs. */
  #onChange = (change?: ChangeKind, version?: number): void => {
    if (change === "events" || this.#abort.aborted) return;
    // Our own writes (and older ones) tell us nothing new. If another writer beat us to that
    // version, our compare-and-set fails and #update reads what it wrote.
    if (version !== undefined && version <= Math.max(this.#record.version, this.#writingVersion)) return;
    if (this.#checking) {
      this.#recheck = true;
      return;
    }
    this.#checking = true;
    this.#store
      .getRun(this.runId)
      .then((record) => {
        if (!record || record.run.status === "cancelling" || isTerminal(record.run.status)) this.#abort.abort();
        else if (this.#epoch !== undefined && this.#notMine(record)) this.#lose();
      })
      .catch(() => {})
      .finally(() => {
        this.#checking = false;
        // A change that came in while we read may be newer than what we read.
        if (this.#recheck) {
          this.#recheck = false;
          this.#onChange("record");
        }
      });
  };

  /** A handler that ends must have replayed everything recorded; else the replay diverged. */
  #checkReplayEnded(): void {
    const steps = this.#steps!;
    let detail: string | undefined;
    if (steps.unconsumed > 0) detail = `the handler ended with ${steps.unconsumed} recorded steps not replayed`;
    else if (this.#skip > 0) detail = `the handler ended ${this.#skip} events short of its log`;
    else if (this.#awaits < this.#loggedAwaits) detail = "the handler ended before an await it made";
    if (detail === undefined) return;
    this.#diverge(detail);
    throw divergedError(detail);
  }

  /** Counts the events `item` will produce; throws (failing the run) past the limit. */
  #countEvents(item: Classified): void {
    const closesOpen = this.#open === undefined ? 0 : 1;
    if (item.kind === "part") this.#produced += this.#open === undefined ? 2 : 1;
    else if (item.kind === "message") this.#produced += closesOpen + item.message.parts.length + 2;
    else if (item.kind === "await") this.#produced += closesOpen;
    else if (item.kind === "generic") this.#produced += 1;
    if (this.#produced > this.#maxEvents) throw eventLimitError(this.#maxEvents);
  }

  #emitPart(yielded: MessagePart): void {
    // A failed append fails the run before this part joins the output: output and log agree.
    this.#writer.throwIfFailed();
    // A replayed part that the log holds is sent as the log has it (the message completes with it).
    const part = this.#skip > 0 && this.#logOpen !== undefined ? this.#loggedPart(yielded) : yielded;
    if (this.#open === undefined) {
      this.#open = { role: this.#role, parts: [part], created_at: now() };
      this.#push({ type: "message.created", message: { ...this.#open, parts: [part] } });
    } else {
      this.#open.parts.push(part);
    }
    this.#push({ type: "message.part", part });
  }

  /**
   * During a replay, the part the log holds in place of `part`, when the log was streaming a
   * message at the takeover and this part (or the message it opens) is in it. The message then
   * also keeps its logged `created_at`.
   */
  #loggedPart(part: MessagePart): MessagePart {
    const open = this.#logOpen!;
    // Position among the handler-output events of the event this part sends next.
    let at = this.#logged - this.#skip;
    if (this.#open === undefined) {
      if (at !== open.at) return part;
      this.#open = { role: open.message.role, parts: [], created_at: open.message.created_at ?? now() };
      // The created event is dropped (the log has it), then the part follows.
      this.#skip -= 1;
      at += 1;
    }
    return open.parts[at - open.at - 1] ?? part;
  }

  /** Events and output that close the open message, if there is one. */
  #closeOpen(): { events: Event[]; output: Message[] } {
    const open = this.#open;
    if (open === undefined) return { events: [], output: [] };
    this.#open = undefined;
    const message: Message = { ...open, completed_at: now() };
    return { events: [{ type: "message.completed", message }], output: [message] };
  }

  /** A whole yielded message: closes the open one, then streams and completes this one. */
  #completeMessage(message: Message): void {
    this.#writer.throwIfFailed();
    const closed = this.#closeOpen();
    const created_at = now();
    const whole = stamped(message, created_at, created_at);
    // A replayed message whose completion the log holds is in the output already (see DurableInit).
    for (const event of closed.events) if (this.#push(event)) this.#unsavedOutput.push(...closed.output);
    this.#push({ type: "message.created", message: stamped(message, created_at) });
    for (const part of message.parts) this.#push({ type: "message.part", part });
    // The record's output is written with the next transition, not now: rewriting it with every
    // message would cost O(n²) bytes over a long run. Readers of a running run take the output
    // from the log (runtime.getRun).
    if (this.#push({ type: "message.completed", message: whole })) this.#unsavedOutput.push(whole);
  }

  /** Ends the unobserved phase: from now on the run can be seen and cancelled, so listen, and write at once. */
  async #becomeVisible(): Promise<void> {
    if (!this.#unobserved) return;
    this.#unobserved = false;
    this.#writer.untilTurnEnds = false;
    await this.#ensureStored();
    await this.listen();
    this.#startChecks();
  }

  /** Moves the run to `awaiting`, waits for a resume through any instance, and returns it. */
  async #await(message: Message): Promise<AwaitResume | undefined> {
    // The awaiting run goes out to the client, who may cancel or resume it through any instance.
    await this.#becomeVisible();
    const closed = this.#dropReplayed(this.#closeOpen());
    let asked = true;
    const replay = this.#steps === undefined ? "live" : this.#replayAwait();
    if (typeof replay === "object") {
      this.#unsavedOutput.push(...closed.output);
      if (replay.resume !== undefined) {
        if (!replay.recorded) await this.#steps!.recordResume(replay.resume);
        return replay.resume;
      }
    } else {
      asked = await this.#update(
        (run) => ({
          ...run,
          status: "awaiting",
          await_request: { type: "message", message },
          output: [...run.output, ...closed.output],
        }),
        (run) => [...closed.events, { type: "run.awaiting", run }],
      );
    }
    if (!asked) return undefined;
    if (this.#handOffAtAwait) this.release();
    this.#awaiting = true;
    let record: StoredRun | undefined;
    try {
      record = await this.#waitForResume();
    } finally {
      this.#awaiting = false;
    }
    if (record === undefined || this.#abort.aborted) return undefined;
    if (this.#epoch !== undefined && this.#notMine(record)) {
      this.#lose();
      return undefined;
    }
    this.#record = record;
    // The resume appended its run.in-progress event: learn the log's new length.
    const lastSeq = this.#writer.lastSeq;
    const tail = await retryOutage(
      () => this.#store.readEvents(this.runId, lastSeq),
      Date.now() + this.#outageMs,
      this.#abort,
    );
    this.#writer.lastSeq = tail.at(-1)?.seq ?? this.#writer.lastSeq;
    if (record.run.status === "cancelling") return undefined;
    if (isTerminal(record.run.status)) throw new RunGoneError(this.runId);
    const resume = record.resume ?? undefined;
    // Recorded before the handler gets it, so that a replay hands it in again.
    if (resume !== undefined) await this.#steps?.recordResume(resume);
    return resume;
  }

  /**
   * How a durable run's await goes: `"live"` (the run goes to `awaiting`, as always); `{ resume }`
   * when a replay hands in a resume recorded (`recorded`) or stored in the record before the
   * takeover; `{}` when the run awaits already (taken over while awaiting): it waits for a resume
   * without a transition.
   * @throws ACPError (diverged) when the await is not where the first execution made it
   */
  #replayAwait(): "live" | { resume?: AwaitResume; recorded?: boolean } {
    this.#awaits += 1;
    const recorded = this.#steps!.replayedResume();
    if (recorded !== undefined) return { resume: recorded, recorded: true };
    let detail: string | undefined;
    if (this.#skip > 0) detail = `the handler awaited ${this.#skip} events short of its log`;
    else if (this.#awaits < this.#loggedAwaits) detail = "an earlier await's resume was not recorded";
    else if (this.#awaits === this.#loggedAwaits) {
      // The takeover's record tells how this await went on: a resume stored but not yet recorded, or still awaiting.
      const record = this.#record;
      if (record.run.status === "awaiting") return {};
      if (record.resume) return { resume: record.resume };
      detail = "the log shows this await resumed, but its resume is not recorded";
    } else return "live";
    this.#diverge(detail);
    throw divergedError(detail);
  }

  /**
   * Waits for the record to leave `awaiting`, however long that takes, store outages included:
   * the agent does nothing meanwhile and a person may take hours to answer, so an outage is
   * waited out instead of failing the run. A run ended elsewhere meanwhile (its instance's lease
   * ran out) is found ended once the store answers again.
   */
  async #waitForResume(): Promise<StoredRun | undefined> {
    const signal = this.#abort.signal;
    for (;;) {
      try {
        // The instance's periodic check wakes the wait when the record moved: a lost notification
        // delays a resume or a cancel by at most its period.
        const durable = this.#epoch !== undefined;
        // A durable run taken over meanwhile (its owner seemed gone) is no longer ours to resume.
        const done = (stored: StoredRun): boolean =>
          stored.run.status !== "awaiting" || (durable && this.#notMine(stored));
        return await waitForRecord(this.#store, this.runId, done, { signal, watch: this.#watch });
      } catch (error) {
        if (!isStoreOutage(error) || signal.aborted) throw error;
        await retryOutage(() => this.#store.ping(), Number.POSITIVE_INFINITY, signal);
      }
    }
  }

  /**
   * Compare-and-set of the run record with `events` appended, after every buffered event. On a
   * conflict it re-reads: a cancel makes it return false (and abort the handler); an end decided
   * elsewhere throws {@link RunGoneError}; anything else is retried on the fresh record.
   */
  async #update(
    change: (run: Run) => Run,
    events: (run: Run) => Event[],
    final = false,
    history?: HistoryAppend,
  ): Promise<boolean> {
    // #finish flushed already, and recorded a failed flush as the run's failure: the end must
    // still be written after it.
    // Appends in flight land first (the log keeps its order). A failed one fails a normal
    // transition; the final one is written anyway (#finish recorded the failure).
    // Checked before any await: the queued events' own append would start on the next microtask.
    while (this.#writer.busy) {
      if (final) await this.#writer.drain().catch(() => {});
      else await this.#writer.drain();
    }
    if (!final) this.#writer.throwIfFailed();
    // Events the agent produced just before this transition go in the same store call.
    const queued = this.#writer.takeBuffered();
    const deadline = Date.now() + (final ? FINISH_RETRY_MS : this.#outageMs);
    for (;;) {
      const current = this.#record;
      if (current.run.status === "cancelling" && !final) {
        this.#writer.giveBack(queued);
        this.#abort.abort();
        return false;
      }
      // Messages completed while unobserved join the output now, before the transition's own change.
      const unsaved = this.#unsavedOutput.length;
      const run = change(
        unsaved === 0 ? current.run : { ...current.run, output: [...current.run.output, ...this.#unsavedOutput] },
      );
      const written = [...queued, ...events(run)];
      let uncertain = false;
      this.#writingVersion = current.version + 1;
      const write = (): Promise<UpdateResult> =>
        this.#store.updateRun(this.runId, current.version, { ...current, run, resume: null }, written, {
          history,
          unobserved: this.#unobserved,
        });
      let result: UpdateResult;
      try {
        // The first attempt awaited as it is: retries only after a failure.
        result = await write();
      } catch (error) {
        result = await retryOutageAfter(error, write, deadline, this.#giveUp, (failure) => {
          uncertain ||= isStoreOutage(failure);
        });
      }
      // A write that timed out may have landed: then the store holds exactly what we wrote.
      if (
        !result.ok &&
        uncertain &&
        result.record?.version === current.version + 1 &&
        sameValue(result.record.run, run)
      ) {
        result = { ok: true, record: result.record, lastSeq: this.#writer.lastSeq + written.length };
      }
      if (result.ok) {
        this.#unsavedOutput.splice(0, unsaved);
        this.#record = result.record;
        this.#writer.lastSeq = result.lastSeq;
        this.#wakeWaiters(result.record);
        return true;
      }
      if (result.record === undefined || isTerminal(result.record.run.status)) throw new RunGoneError(this.runId);
      if (this.#epoch !== undefined && this.#notMine(result.record)) {
        this.#lose();
        this.#writer.giveBack(queued);
        throw new RunGoneError(this.runId);
      }
      this.#record = result.record;
    }
  }

  /** Creates the run in the store if it is not stored yet (see {@link ExecutorInit.unstored}); once. */
  #ensureStored(): Promise<void> {
    if (this.#unstored === undefined) return Promise.resolve();
    if (this.#storing === undefined) {
      const storing = this.#createStored(this.#record, this.#unstored, Date.now() + this.#outageMs, undefined, () => {
        this.#storing = undefined;
        this.#unstored = undefined;
        this.#writer.prepare = undefined;
      });
      // A failed creation is tried again by the next caller.
      storing.catch(() => {
        if (this.#storing === storing) this.#storing = undefined;
      });
      this.#storing = storing;
    }
    return this.#storing;
  }

  /**
   * Stores the run ended, with its whole log and `history`, in one call: the end of a run that
   * was never stored. The counterpart of {@link #update}'s final write.
   */
  #createEnded(change: (run: Run) => Run, events: (run: Run) => Event[], history?: HistoryAppend): Promise<void> {
    const current = this.#record;
    const unsaved = this.#unsavedOutput.length;
    const run = change(
      unsaved === 0 ? current.run : { ...current.run, output: [...current.run.output, ...this.#unsavedOutput] },
    );
    const written = [...this.#unstored!, ...this.#writer.takeBuffered(), ...events(run)];
    const record: StoredRun = { ...current, run, resume: null, version: 1 };
    // The agent has acted: its end is retried through an outage as long as a stored run's end is
    // (a 503 now would have the client run it again). A run started while the store looked down
    // was stored first instead (see the runtime).
    return this.#createStored(record, written, Date.now() + FINISH_RETRY_MS, history, () => {
      this.#unstored = undefined;
      this.#writer.prepare = undefined;
      this.#unsavedOutput.splice(0, unsaved);
      this.#record = record;
      this.#writer.lastSeq = written.length;
      this.#wakeWaiters(record);
    });
  }

  /**
   * Creates the run as `record` with `events`, retrying through an outage until `deadline`;
   * `stored` is called once it is. A create that failed may have landed: before trying again,
   * the store is read (once a call that timed out has ended), and a run found there must be
   * exactly `record` (anything else is an id collision). Not async: a first attempt that
   * succeeds costs its store call's promise and one then.
   */
  #createStored(
    record: StoredRun,
    events: Event[],
    deadline: number,
    history: HistoryAppend | undefined,
    stored: () => void,
  ): Promise<void> {
    const create = (): Promise<boolean> =>
      this.#store.createRun(record, events, history === undefined ? undefined : { history });
    const created = (ok: boolean): void => {
      if (!ok) throw new ACPError({ code: "server_error", message: "Run id collision; retry" });
      stored();
    };
    let first: Promise<boolean>;
    try {
      first = create();
    } catch (error) {
      return this.#createRetried(error, record, create, deadline).then(created);
    }
    return first.then(created, (error: unknown) => this.#createRetried(error, record, create, deadline).then(created));
  }

  /** The retries of {@link #createStored} after its first attempt failed with `first`: whether the run was created. */
  async #createRetried(
    first: unknown,
    record: StoredRun,
    create: () => Promise<boolean>,
    deadline: number,
  ): Promise<boolean> {
    let uncertain = false;
    let pending: Promise<void> | undefined;
    // What a create that landed left: exactly `record` (anything else is an id collision).
    const isOurs = (stored: StoredRun | undefined): boolean =>
      stored?.version === 1 && stored.owner === record.owner && sameValue(stored.run, record.run);
    const createUnlessLanded = async (): Promise<boolean> => {
      if (pending !== undefined) await waitLanded(pending, LANDED_WAIT_MS, `the creation of run ${this.runId}`);
      pending = undefined;
      const stored = await this.#store.getRun(this.runId);
      return stored === undefined ? create() : isOurs(stored);
    };
    const attempt = (): Promise<boolean> => (uncertain ? createUnlessLanded() : create());
    try {
      return await retryOutageAfter(first, attempt, deadline, this.#giveUp, (error) => {
        if (!isStoreOutage(error)) return;
        uncertain = true;
        pending = whenLanded(error) ?? pending;
      });
    } catch (error) {
      // Out of time: a call that timed out may land yet. If it does within a while, the run is stored.
      const last = pending;
      if (last === undefined) throw error;
      const created = await waitLanded(last, LANDED_WAIT_MS, `the creation of run ${this.runId}`)
        .then(() => this.#store.getRun(this.runId))
        .then(isOurs, () => false);
      if (!created) throw error;
      return true;
    }
  }

  /**
   * Records the end, with the session's history in the same write (so a client that sees the end
   * sees the history). Not async: the end's write is the promise (see {@link #finishRefused} for
   * a write the store refused).
   */
  #finish(outcome: Outcome): Promise<unknown> {
    // What is still queued goes with the final transition.
    if (this.#writer.busy) return this.#finishAfterDrain(outcome);
    try {
      this.#writer.throwIfFailed();
    } catch (error) {
      if (error instanceof RunGoneError) throw error;
      return this.#writeEnd({ status: "failed", error: failure(error) });
    }
    return this.#writeEnd(outcome);
  }

  async #finishAfterDrain(outcome: Outcome): Promise<void> {
    try {
      await this.#writer.drain();
    } catch (error) {
      if (error instanceof RunGoneError) throw error;
      outcome = { status: "failed", error: failure(error) };
    }
    await this.#writeEnd(outcome);
  }

  /** The final transition of a run whose writes are all in: to `outcome`, unless a cancel won the race. */
  #writeEnd(outcome: Outcome): Promise<unknown> {
    const closed = this.#dropReplayed(this.#closeOpen());
    const output = [...this.#record.run.output, ...this.#unsavedOutput, ...closed.output];
    const items = [...this.#input, ...output].map((message) => ({ id: randomUUID(), message }));
    const change = (run: Run): Run => {
      // A cancel that won the race against completion turns the end into a cancel.
      const status = run.status === "cancelling" ? "cancelled" : outcome.status;
      const error = status === "failed" && outcome.status === "failed" ? outcome.error : null;
      return ended(run, status, [...run.output, ...closed.output], error);
    };
    const endEvents = (run: Run): Event[] => [
      ...closed.events,
      { type: `run.${run.status as "completed" | "failed" | "cancelled"}`, run },
    ];
    // Made once: a retried write carries the same item ids, which is how stores avoid doubling them.
    const history: HistoryAppend = { sessionId: this.#history.storeId, items };
    // A run not stored yet is stored now, ended: its only store call.
    return this.#unstored === undefined
      ? this.#update(change, endEvents, true, history)
      : this.#createEnded(change, endEvents, history);
  }

  /**
   * The store refused the run's end (`error`): retrying would be refused the same way, so the end
   * is written without the output, its events and the history, so that the run does not stay in
   * progress.
   */
  async #finishRefused(error: unknown): Promise<void> {
    this.#logger.error(
      this.#fields({ err: error }),
      "the store refused the run's end; it is failed without its output",
    );
    const refused = (run: Run): Run => ended(run, "failed", [], REFUSED_END);
    const failedEvent = (run: Run): Event[] => [{ type: "run.failed", run }];
    if (this.#unstored === undefined) await this.#update(refused, failedEvent, true);
    else await this.#createEnded(refused, failedEvent);
  }
}

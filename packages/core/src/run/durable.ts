/**
 * Durable runs: the steps of a run recorded in the store, and what a takeover reads to replay the
 * handler. The first execution records each `ctx.step` result (and each resume) before the handler
 * sees it; a replay hands the recorded ones back in order and drops the events the log holds.
 */
import { ACPError } from "../errors.ts";
import { stepTooLargeError } from "../limits.ts";
import type { AwaitResume, ErrorModel, Message, MessagePart } from "../models.ts";
import type { StepRecord, Store } from "../store.ts";
import type { Cancellation } from "./cancellation.ts";
import { RunGoneError } from "./event-writer.ts";
import { isStoreOutage, retryOutage, waitLanded, whenLanded } from "./guarded-store.ts";
import { storableText } from "./yielded.ts";

/** The reserved step name under which a resume of a durable run is recorded. */
export const RESUME_STEP = "acp:resume";

/** The error of a durable run whose replay did not do what the first execution recorded. */
export const DIVERGED: ErrorModel = { code: "server_error", message: "durable run diverged on replay" };

/** Events read per store call when a takeover reads the log. */
const PAGE = 1000;

/** How long one attempt waits for an earlier recordStep that timed out to land. */
const LANDED_WAIT_MS = 1000;

/** What the executor of a durable run starts from. */
export interface DurableInit {
  /** The ownership epoch this executor holds: its writes are fenced by it. */
  epoch: number;
  /** `ctx.attempt`. */
  attempt: number;
  /** Steps recorded by earlier executions (none for a new run). */
  steps: StepRecord[];
  /** What the log held when the run was taken over (a new run: see {@link NEW_LOG}). */
  log: LogState;
}

/** What a run's log tells a takeover. */
export interface LogState {
  /** The seq of its last event. */
  lastSeq: number;
  /** How many events the handler's output produced (every event but the run's status events): a replay drops that many. */
  handlerEvents: number;
  /** How many times the run went to `awaiting`. */
  awaits: number;
  /** The completed messages, in order. */
  output: Message[];
  /**
   * The message the log was streaming at its end, if any: `at` is the position of its
   * `message.created` among the handler-output events; `parts` are the parts sent since. A replay
   * completes it with these parts, not with the ones it yields again in their place.
   */
  open?: { at: number; message: Message; parts: MessagePart[] };
}

/** The log of a run just created: `run.created` and `run.in-progress`. */
export const NEW_LOG: LogState = Object.freeze({ lastSeq: 2, handlerEvents: 0, awaits: 0, output: [] });

/** Reads the whole log of a run that is being taken over (after the takeover: nothing is added to it meanwhile). */
export async function readLog(store: Store, runId: string): Promise<LogState> {
  const state: LogState = { lastSeq: 0, handlerEvents: 0, awaits: 0, output: [] };
  for (;;) {
    const page = await store.readEvents(runId, state.lastSeq, PAGE);
    for (const { seq, event } of page) {
      state.lastSeq = seq;
      if (event.type === "run.awaiting") state.awaits += 1;
      else if (event.type === "message.created")
        state.open = { at: state.handlerEvents, message: event.message, parts: [] };
      else if (event.type === "message.part") state.open?.parts.push(event.part);
      else if (event.type === "message.completed") {
        state.output.push(event.message);
        state.open = undefined;
      }
      if (!event.type.startsWith("run.")) state.handlerEvents += 1;
    }
    if (page.length < PAGE) return state;
  }
}

/** The error a step throws when the replay diverged (the run fails with {@link DIVERGED}). */
export function divergedError(detail: string): ACPError {
  return new ACPError({ ...DIVERGED, data: { detail } });
}

/** What {@link DurableSteps} needs of its executor. */
export interface StepsHost {
  store: Store;
  runId: string;
  epoch: number;
  outageMs: number;
  maxStepBytes: number;
  /** Aborts on cancel and on loss of ownership: `fn` gets its signal. */
  cancellation: Cancellation;
  /** The replay diverged: the run fails with {@link DIVERGED}. */
  diverged(detail: string): void;
  /** Another instance owns the run now (or it ended): stop without writing. */
  lost(): void;
}

/** The steps of one execution of a durable run: recorded live, handed back on a replay. */
export class DurableSteps {
  readonly #host: StepsHost;
  /** Recorded steps not handed back yet, by index. */
  readonly #recorded = new Map<number, StepRecord>();
  /** The index of the next `step` call (or resume). */
  #next = 0;

  constructor(host: StepsHost, recorded: readonly StepRecord[]) {
    this.#host = host;
    for (const step of recorded) this.#recorded.set(step.index, step);
  }

  /** How many recorded steps the replay has not reached yet. */
  get unconsumed(): number {
    return this.#recorded.size;
  }

  /** See {@link AgentContext.step}. */
  async run<T>(name: string, fn: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
    const index = this.#next++;
    const recorded = this.#take(index, name);
    if (recorded !== undefined) {
      if (recorded.error !== undefined) throw new Error(recorded.error);
      return JSON.parse(recorded.result ?? "null") as T;
    }
    const cancellation = this.#host.cancellation;
    if (cancellation.aborted) throw abortError(name);
    let value: unknown;
    try {
      value = await fn(cancellation.signal);
    } catch (error) {
      // A step cut short by a cancel or a takeover is not recorded: a replay runs it again.
      if (cancellation.aborted) throw error;
      await this.#record({ index, name, error: this.#message(error) });
      throw error;
    }
    if (cancellation.aborted) throw abortError(name);
    const json = this.#json(name, value);
    if (json instanceof Error) {
      await this.#record({ index, name, error: json.message });
      throw json;
    }
    await this.#record({ index, name, result: json });
    return JSON.parse(json) as T;
  }

  /**
   * The resume recorded for the handler's next await, if the replay has one; `undefined` when
   * the replay has no recorded step left at this point.
   * @throws ACPError (diverged) when the step recorded here is not a resume
   */
  replayedResume(): AwaitResume | undefined {
    const recorded = this.#recorded.size === 0 ? undefined : this.#take(this.#next, RESUME_STEP);
    if (recorded === undefined) return undefined;
    this.#next += 1;
    return JSON.parse(recorded.result ?? "null") as AwaitResume;
  }

  /** Records a resume before the handler gets it, so that a replay hands it in again. */
  async recordResume(resume: AwaitResume): Promise<void> {
    const index = this.#next++;
    await this.#record({ index, name: RESUME_STEP, result: JSON.stringify(resume) });
  }

  /** The recorded step at `index`, taken off the replay; throws when it has another name. */
  #take(index: number, name: string): StepRecord | undefined {
    const recorded = this.#recorded.get(index);
    if (recorded === undefined) return undefined;
    this.#recorded.delete(index);
    if (recorded.name !== name) {
      const detail = `step ${index} was "${recorded.name}" and is now "${name}"`;
      this.#host.diverged(detail);
      throw divergedError(detail);
    }
    return recorded;
  }

  /** The JSON text of a step's value, or the error that it cannot be recorded. */
  #json(name: string, value: unknown): string | Error {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      return new TypeError(`The result of step "${name}" cannot be recorded as JSON: ${(error as Error).message}`);
    }
    json ??= "null";
    const max = this.#host.maxStepBytes;
    // Most results are far below the limit: the exact count only when it could matter.
    if (json.length * 3 > max) {
      const bytes = Buffer.byteLength(json, "utf8");
      if (bytes > max) return stepTooLargeError(name, bytes, max);
    }
    return json;
  }

  /** An error's message as the store can hold it, within the step limit. */
  #message(error: unknown): string {
    const text = error instanceof Error ? error.message : String(error);
    return storableText(text.length > this.#host.maxStepBytes / 3 ? text.slice(0, this.#host.maxStepBytes / 3) : text);
  }

  /**
   * Stores a step, retrying through an outage. A refusal (a former owner, a run that ended)
   * means this instance drives the run no more: the executor stops.
   */
  async #record(step: StepRecord): Promise<void> {
    const { store, runId, epoch, outageMs, cancellation } = this.#host;
    let pending: Promise<void> | undefined;
    let uncertain = false;
    const stored = await retryOutage(
      async () => {
        // A call that timed out may still land: wait for it before trying again.
        if (pending !== undefined) await waitLanded(pending, LANDED_WAIT_MS, `an earlier step of run ${runId}`);
        pending = undefined;
        try {
          return await store.recordStep(runId, epoch, step);
        } catch (error) {
          uncertain ||= isStoreOutage(error);
          pending = whenLanded(error);
          throw error;
        }
      },
      Date.now() + outageMs,
      cancellation,
    );
    if (stored) return;
    if (uncertain) {
      // The index is taken: by our own call that failed but landed?
      const landed = (await store.readSteps(runId)).find((recorded) => recorded.index === step.index);
      if (landed && landed.name === step.name && landed.result === step.result && landed.error === step.error) return;
    }
    this.#host.lost();
    throw new RunGoneError(runId);
  }
}

function abortError(name: string): Error {
  const error = new Error(`Step "${name}" was not run: the run was cancelled or taken over`);
  error.name = "AbortError";
  return error;
}

/**
 * The `Store` interface: everything that several ACP server instances share. Backends
 * (`@acp/store-memory`, `@acp/store-redis`, `@acp/store-postgres`) implement it and run the
 * conformance suite of `@acp/core/testing` against themselves.
 *
 * The runtime builds the whole protocol on these primitives:
 * - a run record with a version, changed only by compare-and-set, so that races between instances
 *   (cancel vs completion, two resumes) have exactly one winner;
 * - an append-only event log per run, numbered from 1, so one event costs one append and a reader
 *   can continue from any sequence number;
 * - change notifications per run, which only wake readers up (they then read the log), so a lost
 *   notification delays a reader but never loses an event;
 * - an append-only session history, written with a run's last update;
 * - instance heartbeats, so that another instance can fail the runs of an instance that died.
 *
 * Time is in milliseconds everywhere. Every method rejects (never resolves `false` or `undefined`)
 * when the backend fails, with a {@link StoreError}, so the runtime sees outages; when the
 * backend refuses a value it was given (a write that would fail again the same way), with a
 * {@link StoreRefusedError}, which the runtime never retries.
 *
 * What every store needs besides the interface is exported here too: {@link StoreError} (and
 * {@link StoreRefusedError} for a refused value) with {@link wrapStoreError} and {@link attemptStore}, {@link ListenerSet}, {@link StoreOptions} with
 * {@link resolveTtlMs}, and {@link STORE_CONTRACT_VERSION}.
 * @module
 */
import type { Event, Message, Run } from "./models.ts";

export { assertStoreContract, STORE_CONTRACT_VERSION } from "./store/contract.ts";
export { ListenerSet } from "./store/listener-set.ts";
export { DEFAULT_TTL_MS, resolveTtlMs, type StoreOptions } from "./store/options.ts";
export {
  attemptStore,
  isStoreRefusal,
  StoreError,
  StoreRefusedError,
  wrapStoreError,
} from "./store/store-error.ts";

/** A run as the store keeps it: the wire-shaped run plus what instances need to coordinate. */
export interface StoredRun {
  /** The run exactly as `GET /runs/{id}` returns it. */
  run: Run;
  /** Starts at 1 on create; every successful {@link Store.updateRun} increments it by one. */
  version: number;
  /** Id of the instance whose process runs the agent (holds the generator). */
  owner: string;
  /**
   * A client's resume waiting for the owner to pick it up; set together with the move from
   * `awaiting` to `in-progress`, cleared by the owner when it hands the value to the agent.
   */
  resume?: { type: "message"; message: Message } | null;
  /**
   * The tenant that created the run (with API keys: see `AuthOptions.apiKeys`), never a key;
   * absent without authentication. Set on create and kept as is by every update; requests of
   * another tenant find no such run. Stores keep it like any other field.
   */
  tenant?: string;
  /**
   * The ownership epoch: 1 at create (absent means 1), one more at each takeover (an
   * {@link Store.updateRun} that sets a new `owner` together with `epoch + 1`). Writes of a
   * former owner are fenced by it: {@link Store.appendEvents} with an epoch and
   * {@link Store.recordStep} refuse once the stored epoch differs. Stores keep it like any other
   * field.
   */
  epoch?: number;
  /**
   * What another instance needs to replay the handler of a durable run after a takeover; absent
   * for a run that is not durable. Written at create, changed only by a takeover. Stores keep it
   * like any other field.
   */
  durable?: DurableState;
  /**
   * The W3C trace context of the run's first `invoke_agent` span, when tracing was on where it was
   * created: work on the run done later on any instance (a resume, a cancel, a takeover) joins
   * that trace. Set on create and kept as is by every update; stores keep it like any other field.
   */
  trace?: RunTraceContext;
}

/** A span's W3C trace context as text (see {@link StoredRun.trace}). */
export interface RunTraceContext {
  /** The `traceparent` header value of the span: `00-<trace id>-<span id>-<flags>`. */
  traceparent: string;
  /** The `tracestate` header value, when the trace has one. */
  tracestate?: string;
}

/** What a takeover needs to replay a durable run's handler (see {@link StoredRun.durable}). */
export interface DurableState {
  /** The run's input, as the handler first got it. */
  input: Message[];
  /** 1 for the first execution, one more for each takeover (`ctx.attempt`). */
  attempt: number;
  /** The id of the history store the run's session history was read from, if any. */
  historyStoreId?: string;
  /** The URLs of the earlier runs' history the handler was given, if any. */
  historyUrls?: string[];
  /** The origin under which those URLs are this deployment's own (read from the store), if known. */
  historyOrigin?: string;
}

/**
 * The recorded outcome of one `ctx.step` of a durable run (see {@link Store.recordStep}).
 * Exactly one of `result` and `error` is present.
 */
export interface StepRecord {
  /** The step's position in the run: 0 for its first step, then 1, 2, … */
  index: number;
  /** The name the handler gave the step; a replay checks that it calls the same steps in order. */
  name: string;
  /** The JSON text of the value the step returned. */
  result?: string;
  /** The message of the error the step threw. */
  error?: string;
}

/** A session's history without its messages (see {@link Store.getSession}). */
export interface SessionSummary {
  /** The ids of the session's items, in append order. */
  itemIds: string[];
  /** The total size of the items' messages: the sum of {@link historyItemBytes} over them. */
  bytes: number;
}

/**
 * The size in bytes that a history item counts for in {@link SessionSummary.bytes}: the length
 * in UTF-8 of its message as `JSON.stringify` writes it. Stores compute it when they append the
 * item and keep the sum, so that it is the same number whatever the backend's own encoding.
 * @example
 * historyItemBytes({ id, message: { role: "user", parts: [] } }); // 26
 */
export function historyItemBytes(item: HistoryItem): number {
  return Buffer.byteLength(JSON.stringify(item.message), "utf8");
}

/** An event of a run with its position in the run's log. */
export interface StoredEvent {
  /** 1 for the first event of a run, then 2, 3, …: no gaps, no repeats. */
  seq: number;
  event: Event;
}

/** One message of a session's history, addressable as `GET /resources/{id}`. */
export interface HistoryItem {
  /** A UUID, unique across sessions. */
  id: string;
  message: Message;
}

/** Items for a session's history, written with a run's last update (see {@link Store.updateRun}). */
export interface HistoryAppend {
  sessionId: string;
  items: HistoryItem[];
}

/** Options of {@link Store.createRun}. */
export interface CreateOptions {
  /** The session history of a run created ended, written with it. @default undefined (none) */
  history?: HistoryAppend;
}

/** What else an update may carry (see {@link Store.updateRun}). */

export interface UpdateOptions {
  /** The session history of a run's end, written with it. */
  history?: HistoryAppend;
  /**
   * Nobody can be subscribed to the run yet (a sync run, whose id goes out only with its answer):
   * the store may skip notifying this change. A hint: notifying anyway is correct.
   */
  unobserved?: boolean;
}

/**
 * Where a run stands, as {@link Store.getRunHeads} reads it: enough to tell whether it moved
 * since the last look, without reading its record or its log.
 */
export interface RunHead {
  /** The record's {@link StoredRun.version}. */
  version: number;
  /** Whether the record's status is terminal (`completed`, `failed` or `cancelled`). */
  ended: boolean;
  /** The seq of the last event of the run's log; 0 when the log is empty. */
  lastSeq: number;
}

/** The outcome of a compare-and-set: either it applied, or here is what the store holds now. */
export type UpdateResult =
  | { ok: true; record: StoredRun; lastSeq: number }
  | { ok: false; record: StoredRun | undefined };

/**
 * What changed: `"events"` after {@link Store.appendEvents}, `"record"` after a write of the run
 * record ({@link Store.updateRun}, which may also append events). `undefined` means "unknown":
 * listeners treat it as both. Stores SHOULD pass the kind, so that the instance running an agent
 * re-reads the record (to see a cancel or a resume) only when the record changed.
 */
export type ChangeKind = "events" | "record";

/**
 * Called when a run changes. Must not throw: a store logs one that does and still calls the
 * others ({@link ListenerSet}). With `"record"`, stores SHOULD also pass the record's version
 * after the change: the instance running the agent then skips re-reading the record after its
 * own writes.
 */
export type ChangeListener = (change?: ChangeKind, version?: number) => void;

/** Stops a subscription; resolves once no further calls will happen. Idempotent. */
export type Unsubscribe = () => Promise<void>;

export interface Store {
  /**
   * The version of the store contract this store implements: {@link STORE_CONTRACT_VERSION} of
   * the core it was written for (see there what each version added). `new Runtime()` and
   * `createApp()` refuse a store whose version is lower than their core needs, or missing.
   * @example
   * readonly contractVersion = STORE_CONTRACT_VERSION;
   */
  readonly contractVersion: number;

  /**
   * Stores a new run with `version: 1` and appends `events` as seq 1, 2, … atomically.
   * Refreshes the TTL of the run and its events.
   *
   * With `options.history` (a run stored only once it ended: a sync run), its items are appended
   * to that session exactly as {@link Store.updateRun} appends them: in the same atomic step where
   * the backend allows it (nothing is appended when the id is taken), else first, skipping items
   * whose id the session holds already.
   * @returns `false`, changing nothing (but, where the history goes first, that history), when a
   * run with that id exists already.
   */
  createRun(record: StoredRun, events: Event[], options?: CreateOptions): Promise<boolean>;

  /**
   * The stored run, a copy the caller may mutate; `undefined` when unknown or expired.
   */
  getRun(runId: string): Promise<StoredRun | undefined>;

  /**
   * Compare-and-set: if the stored version equals `expectedVersion`, replaces the record with
   * `next` (its version becomes `expectedVersion + 1`, whatever `next.version` says) and appends
   * `events` to the run's log, all in one atomic step, then notifies subscribers of the run.
   * Refreshes the TTL of the run and its events.
   *
   * With `options.history` (a run's end), its items are also appended to that session, so that
   * whoever reads the new record finds them: in the same atomic step where the backend allows it
   * (nothing is appended when the version differs). A store that cannot (keys in different Redis
   * Cluster slots) appends them first and skips items whose id the session holds already, so
   * that a retried update never doubles them. This is the only way history is written: the
   * session is created when missing; concurrent updates to one session all land, each one's
   * items contiguous and in order; each item is readable by its id through
   * {@link Store.getHistoryItem}; the session's TTL (and its items') restarts.
   * @returns `{ ok: true, record, lastSeq }` with the stored record and the seq of the last event
   * of the log after the append; `{ ok: false, record }` with the current record (or `undefined`
   * when the run is unknown) when the version differs; the run is not written then.
   */
  updateRun(
    runId: string,
    expectedVersion: number,
    next: StoredRun,
    events: Event[],
    options?: UpdateOptions,
  ): Promise<UpdateResult>;

  /**
   * Appends events to the log of a run that has not ended, atomically and in order, then
   * notifies subscribers. The cost is independent of the log's length. Does not touch the record.
   *
   * With `epoch` (fencing: the owner passes the epoch it holds), it MUST append only if the
   * stored record's {@link StoredRun.epoch} (absent = 1) equals `epoch`, checked atomically with
   * the append (no takeover can land between the check and the append) and at a cost that does
   * not grow with the log or the number of steps. Without `epoch` the epoch is not checked.
   * @returns the seq of the last appended event (the log's new length), or `null`, appending
   * nothing, when the run is unknown, expired, or its stored status is terminal (so that no event
   * ever follows a run's terminal event), or when `epoch` is given and differs from the stored one.
   */
  appendEvents(runId: string, events: Event[], epoch?: number): Promise<number | null>;

  /**
   * Records one step of a durable run, for a replay after a takeover. Stores `step` at
   * `step.index` only if the run exists, has not ended (its stored status is not terminal), its
   * stored {@link StoredRun.epoch} (absent = 1) equals `epoch`, and no step is stored at that
   * index yet: all checked and written in one atomic step, at a cost that does not grow with the
   * number of steps or events. A stored step is never replaced. Refreshes the TTL of the run (and
   * its events and steps) like other writes; steps expire with their run, and
   * {@link Store.heartbeat} keeps the steps of the runs it keeps. Does not notify subscribers.
   * A store MAY refuse a step too large for it with a `StoreRefusedError`.
   * @returns `true` when the step was stored; `false`, storing nothing, when the run is unknown,
   * expired or ended, its epoch differs (a former owner), or the index is taken.
   */
  recordStep(runId: string, epoch: number, step: StepRecord): Promise<boolean>;

  /**
   * Every step recorded for the run, ordered by `index`, as {@link recordStep} stored them
   * (copies the caller may mutate). In one round trip to the backend, however many steps.
   * `[]` for an unknown or expired run.
   */
  readSteps(runId: string): Promise<StepRecord[]>;

  /**
   * The {@link RunHead} of each of `runIds` that is known and not expired, keyed by run id;
   * unknown and expired runs have no entry (so does an id given twice: one entry). Read in one
   * round trip to the backend (one pipeline, one script or one query), at a cost that grows with
   * the number of ids and not with the size of the records or logs: core calls it periodically
   * with every run its instance watches (at most 500 ids per call), as the safety net behind
   * change notifications. The version, `ended` and `lastSeq` of one run are each at least as
   * new as the last write that completed before the call (they need not come from one
   * snapshot). `[]` gives an empty map.
   */
  getRunHeads(runIds: string[]): Promise<Map<string, RunHead>>;

  /**
   * Events with `seq > afterSeq`, in order, at most `limit` of them (all when omitted).
   * An unknown run has no events: `[]`.
   */
  readEvents(runId: string, afterSeq: number, limit?: number): Promise<StoredEvent[]>;

  /**
   * Calls `listener` after each later change of the run (event appended, record updated),
   * including changes made through other store instances on other processes, with the kind of
   * change. Calls may be coalesced (a coalesced call that includes a record change says
   * `"record"` or `undefined`) and may be spurious; a listener reads the store to learn what changed.
   * Resolves once the subscription is in effect: a change made after that is signalled.
   */
  subscribe(runId: string, listener: ChangeListener): Promise<Unsubscribe>;

  /** The session's history in append order; `undefined` when the session is unknown or expired. */
  getHistory(sessionId: string): Promise<HistoryItem[] | undefined>;

  /**
   * The ids of the session's items in append order and their total size
   * ({@link SessionSummary}), without reading the messages: its cost does not grow with the size
   * of the items. `undefined` when the session is unknown or expired, as for {@link getHistory}.
   */
  getSession(sessionId: string): Promise<SessionSummary | undefined>;

  /** One history item by id; `undefined` when unknown or expired. */
  getHistoryItem(itemId: string): Promise<HistoryItem | undefined>;

  /**
   * Records that instance `instanceId` is alive for the next `leaseMs` milliseconds.
   * Calling it again extends the lease. Also restarts the TTL of every run that has not ended
   * and whose `owner` is `instanceId`, and of its events and steps, so that a live run (even one awaiting a
   * person for hours) never expires while its owner lives. Its cost grows with the number of
   * runs the instance owns, not with the number of runs stored.
   */
  heartbeat(instanceId: string, leaseMs: number): Promise<void>;

  /** Whether `instanceId` has a heartbeat that has not yet run out. */
  isAlive(instanceId: string): Promise<boolean>;

  /**
   * Ids of orphaned runs: runs that have not ended whose `owner` has no lease that is still
   * running (its heartbeat ran out, or it never sent one), and runs that have not ended whose
   * `owner` is `""` (released by a draining instance, for another one to adopt). The store finds them itself, reading
   * only what belongs to owners whose lease ran out (never every active run). It contains every
   * such run when `limit` is omitted, else at most `limit` of them (any `limit` of them: a
   * caller that ends those finds the rest on its next call). It may contain false positives
   * (runs that ended or expired meanwhile, an owner that just came back): the caller re-checks
   * each with {@link getRun} and {@link isAlive} right before it takes one over. No order.
   */
  listOrphanedRuns(limit?: number): Promise<string[]>;

  /** Resolves when the backend answers; rejects with the reason otherwise. Used by health checks. */
  ping(): Promise<void>;

  /** Releases what the store itself opened (timers, listeners); never closes a client it was given. */
  close?(): Promise<void>;
}

/**
 * Change notifications for runs over one LISTEN connection per store. Writers call
 * `pg_notify(channel, payload)` in their transaction (see {@link notification}); this class
 * listens on the channel once and dispatches each notification to the listeners of that run in
 * this process.
 */
import { type ChangeKind, type ChangeListener, ListenerSet, type Logger, type Unsubscribe } from "@acp/core";
import type { ListenMeta } from "postgres";
import type { Client } from "./client.ts";

/**
 * The payload of a change notification: `<kind>:<run id>`, or `record@<version>:<run id>` when
 * the record's new version is known (the writer then tells its own changes from others').
 * PostgreSQL folds identical payloads sent in one transaction into one notification.
 */
export function notification(kind: ChangeKind, runId: string, version?: number): string {
  return version === undefined ? `${kind}:${runId}` : `${kind}@${version}:${runId}`;
}

const PAYLOAD = /^(events|record)(?:@(\d+))?:(.*)$/s;

/** The kind, version and run of a payload; a bare run id (no known kind prefix) means "unknown kind". */
function parseNotification(payload: string): {
  kind: ChangeKind | undefined;
  version: number | undefined;
  runId: string;
} {
  const match = PAYLOAD.exec(payload);
  if (!match) return { kind: undefined, version: undefined, runId: payload };
  return {
    kind: match[1] as ChangeKind,
    version: match[2] === undefined ? undefined : Number(match[2]),
    runId: match[3]!,
  };
}

export class RunNotifier {
  readonly #sql: Client;
  readonly #channel: string;
  readonly #listeners: ListenerSet;
  #listening: Promise<ListenMeta> | undefined;
  #listenedOnce = false;
  #closed = false;

  constructor(sql: Client, channel: string, logger?: Logger) {
    this.#sql = sql;
    this.#channel = channel;
    this.#listeners = new ListenerSet("store-postgres", logger);
  }

  /** Adds `listener` for `runId`; resolves once LISTEN is in effect on the database. */
  async subscribe(runId: string, listener: ChangeListener): Promise<Unsubscribe> {
    if (this.#closed) throw new Error("the store is closed");
    const remove = this.#listeners.add(runId, listener);
    try {
      await this.#listen();
    } catch (error) {
      remove();
      throw error;
    }
    return async function unsubscribe() {
      remove();
    };
  }

  /** Stops dispatching and UNLISTENs; the connection itself belongs to postgres.js. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    const listening = this.#listening;
    this.#listening = undefined;
    if (!listening) return;
    const meta = await listening.catch(() => undefined);
    await meta?.unlisten();
  }

  /** Starts the shared LISTEN on first use; a failed start is retried by the next subscriber. */
  #listen(): Promise<ListenMeta> {
    if (!this.#listening) {
      const listening = this.#sql.listen(
        this.#channel,
        (payload) => {
          const { kind, version, runId } = parseNotification(payload);
          this.#dispatch(runId, kind, version);
        },
        () => this.#onListen(),
      );
      this.#listening = listening;
      listening.catch(() => {
        if (this.#listening === listening) this.#listening = undefined;
      });
    }
    return this.#listening;
  }

  /**
   * postgres.js calls this after each LISTEN, including the one it issues again after the LISTEN
   * connection dropped. Notifications sent in between are lost, so every local subscriber is
   * woken up, with an unknown kind of change: it reads the run and its log from its last seq
   * and misses nothing.
   */
  #onListen(): void {
    if (!this.#listenedOnce) {
      this.#listenedOnce = true;
      return;
    }
    if (!this.#closed) this.#listeners.notifyAll();
  }

  #dispatch(runId: string, kind: ChangeKind | undefined, version?: number): void {
    // The listener set logs a listener that throws: it must not break the LISTEN connection,
    // whose data handler runs this.
    if (!this.#closed) this.#listeners.notify(runId, kind, version);
  }
}

/**
 * Sends change notifications after the writes they announce have committed, batching the
 * notifications of concurrent writes into one statement.
 *
 * Why not `pg_notify` inside the write: PostgreSQL takes a database-wide lock when a notifying
 * transaction commits and holds it until the commit is flushed to disk, so notifying writes
 * commit one at a time, each waiting for its own WAL flush. A transaction that only notifies
 * writes no data, so its commit does not wait for a flush and holds that lock for a moment;
 * the writes themselves, without notifications, commit side by side and share their flushes.
 */
import type { Client } from "./client.ts";

interface Batch {
  payloads: string[];
  sent: Promise<void>;
}

export class NotificationSender {
  readonly #sql: Client;
  readonly #channel: string;
  /** The batch whose statement is on its way; at most one at a time. */
  #sending: Promise<void> | undefined;
  /** Payloads that arrived while a batch was on its way: they leave together when it is done. */
  #queued: Batch | undefined;

  constructor(sql: Client, channel: string) {
    this.#sql = sql;
    this.#channel = channel;
  }

  /**
   * Notifies `payload` on the channel; resolves once its notification has been committed, so
   * listeners everywhere will hear of it. Rejects when the statement fails.
   */
  send(payload: string): Promise<void> {
    if (this.#queued) {
      this.#queued.payloads.push(payload);
      return this.#queued.sent;
    }
    if (!this.#sending) return this.#start([payload]);
    const payloads = [payload];
    const sent = this.#sending.then(ignore, ignore).then(() => {
      this.#queued = undefined;
      return this.#start(payloads);
    });
    this.#queued = { payloads, sent };
    return sent;
  }

  /** Resolves once every notification sent so far has settled, whatever its outcome. */
  async flush(): Promise<void> {
    while (this.#queued || this.#sending) {
      await (this.#queued?.sent ?? this.#sending)?.then(ignore, ignore);
    }
  }

  #start(payloads: string[]): Promise<void> {
    const sending = this.#sql`
      SELECT pg_notify(${this.#channel}, payload) FROM unnest(${payloads}::text[]) AS payload`.then(ignore);
    this.#sending = sending;
    const settle = () => {
      if (this.#sending === sending) this.#sending = undefined;
    };
    sending.then(settle, settle);
    return sending;
  }
}

function ignore(): void {}

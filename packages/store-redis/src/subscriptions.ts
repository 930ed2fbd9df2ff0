/**
 * Change subscriptions of one store: a single pub/sub connection, opened on the first
 * subscription, with one Redis subscription per run channel however many listeners it has.
 */
import type { ChangeKind, ChangeListener, Unsubscribe } from "@acp/core";
import type { Commands, MessageHandler, Subscriber } from "./connection.ts";

/** One call of `subscribe`; an object, so the same listener may be subscribed twice. */
interface Subscription {
  listener: ChangeListener;
}

/** The subscriptions to one channel; `ready` settles when Redis confirmed the subscription. */
interface Channel {
  subscriptions: Set<Subscription>;
  handler: MessageHandler;
  ready: Promise<void>;
}

export class Subscriptions {
  readonly #commands: Commands;
  readonly #channels = new Map<string, Channel>();
  #subscriber: Promise<Subscriber> | undefined;
  #closed = false;

  constructor(commands: Commands) {
    this.#commands = commands;
  }

  /** Resolves once Redis confirmed the subscription to `channel`. */
  async add(channel: string, listener: ChangeListener): Promise<Unsubscribe> {
    if (this.#closed) throw new Error("the store is closed");
    const subscriber = await this.#open();
    if (this.#closed) throw new Error("the store is closed");
    let entry = this.#channels.get(channel);
    if (!entry) {
      const subscriptions = new Set<Subscription>();
      const handler: MessageHandler = (message) => notify(subscriptions, ...parseMessage(message));
      entry = { subscriptions, handler, ready: subscriber.subscribe(channel, handler) };
      this.#channels.set(channel, entry);
    }
    const subscription: Subscription = { listener };
    entry.subscriptions.add(subscription);
    try {
      await entry.ready;
    } catch (error) {
      await this.#remove(channel, entry, subscription, subscriber);
      throw error;
    }
    let active = true;
    const remove = (): Promise<void> => this.#remove(channel, entry, subscription, subscriber);
    return async function unsubscribe(): Promise<void> {
      if (!active) return;
      active = false;
      await remove();
    };
  }

  /** Closes the pub/sub connection, if one was opened; later subscriptions are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#channels.values()) entry.subscriptions.clear();
    this.#channels.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    // An open that failed left nothing to close.
    const opened = await subscriber?.catch(() => undefined);
    await opened?.close();
  }

  /** Drops a subscription at once (no further calls), and the channel with its last one. */
  async #remove(channel: string, entry: Channel, subscription: Subscription, subscriber: Subscriber): Promise<void> {
    entry.subscriptions.delete(subscription);
    if (entry.subscriptions.size > 0 || this.#channels.get(channel) !== entry) return;
    this.#channels.delete(channel);
    // A later subscribe to this channel makes a new entry; its SUBSCRIBE is sent after this
    // UNSUBSCRIBE on the same connection, so the two cannot cross.
    await entry.ready.catch(() => undefined);
    await subscriber.unsubscribe(channel, entry.handler);
  }

  #open(): Promise<Subscriber> {
    if (!this.#subscriber) {
      const opening = this.#commands.openSubscriber().then((subscriber) => {
        // Messages sent while the connection was down are lost: wake every listener so readers
        // look at the store again. "undefined" means the kind of change is unknown.
        subscriber.onReconnect?.(() => {
          for (const entry of this.#channels.values()) notify(entry.subscriptions, undefined);
        });
        return subscriber;
      });
      // A failed open is retried by the next subscription rather than remembered.
      opening.catch(() => {
        if (this.#subscriber === opening) this.#subscriber = undefined;
      });
      this.#subscriber = opening;
    }
    return this.#subscriber;
  }
}

/** "events", "record" or "record:<version>" (what the scripts publish); anything else is unknown. */
function parseMessage(message: string): [ChangeKind | undefined, number | undefined] {
  if (message === "events" || message === "record") return [message, undefined];
  const version = /^record:(\d+)$/.exec(message)?.[1];
  return version === undefined ? [undefined, undefined] : ["record", Number(version)];
}

function notify(subscriptions: Set<Subscription>, kind: ChangeKind | undefined, version?: number): void {
  // A copy, so that a listener unsubscribing (or subscribing) while we loop changes nothing here.
  for (const { listener } of [...subscriptions]) {
    try {
      listener(kind, version);
    } catch {
      // Listeners must not throw; one that does must not starve the others of their call.
    }
  }
}

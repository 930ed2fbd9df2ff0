/**
 * Change subscriptions of one store: a single pub/sub connection, opened on the first
 * subscription, with one Redis subscription per run channel however many listeners it has.
 */
import { type ChangeKind, type ChangeListener, ListenerSet, type Logger, type Unsubscribe } from "@acp/core";
import type { Commands, MessageHandler, Subscriber } from "./connection.ts";

/** The Redis subscription to one channel; `ready` settles when Redis confirmed it. */
interface Channel {
  handler: MessageHandler;
  ready: Promise<void>;
}

export class Subscriptions {
  readonly #commands: Commands;
  readonly #channels = new Map<string, Channel>();
  /** The listeners of each channel that has an entry in `#channels`. */
  readonly #listeners: ListenerSet;
  #subscriber: Promise<Subscriber> | undefined;
  #closed = false;

  constructor(commands: Commands, logger?: Logger) {
    this.#commands = commands;
    this.#listeners = new ListenerSet("store-redis", logger);
  }

  /** Resolves once Redis confirmed the subscription to `channel`. */
  async add(channel: string, listener: ChangeListener): Promise<Unsubscribe> {
    if (this.#closed) throw new Error("the store is closed");
    const subscriber = await this.#open();
    if (this.#closed) throw new Error("the store is closed");
    let entry = this.#channels.get(channel);
    if (!entry) {
      // A channel dropped and subscribed again gets a new entry: the old handler, until Redis
      // has taken its UNSUBSCRIBE, must not call the listeners of the new one a second time.
      const handler: MessageHandler = (message) => {
        if (this.#channels.get(channel) === created) this.#listeners.notify(channel, ...parseMessage(message));
      };
      const created: Channel = { handler, ready: subscriber.subscribe(channel, handler) };
      this.#channels.set(channel, created);
      entry = created;
    }
    const removeListener = this.#listeners.add(channel, listener);
    try {
      await entry.ready;
    } catch (error) {
      await this.#remove(channel, entry, removeListener, subscriber);
      throw error;
    }
    let active = true;
    const remove = (): Promise<void> => this.#remove(channel, entry, removeListener, subscriber);
    return async function unsubscribe(): Promise<void> {
      if (!active) return;
      active = false;
      await remove();
    };
  }

  /** Closes the pub/sub connection, if one was opened; later subscriptions are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#channels.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    // An open that failed left nothing to close.
    const opened = await subscriber?.catch(() => undefined);
    await opened?.close();
  }

  /** Drops a subscription at once (no further calls), and the channel with its last one. */
  async #remove(channel: string, entry: Channel, removeListener: () => void, subscriber: Subscriber): Promise<void> {
    removeListener();
    if (this.#listeners.has(channel) || this.#channels.get(channel) !== entry) return;
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
        subscriber.onReconnect(() => this.#listeners.notifyAll());
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

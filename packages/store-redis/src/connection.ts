/**
 * One small surface over the two kinds of node-redis v5 clients the store accepts, so the store
 * itself does not care whether it talks to one server or to a Redis Cluster.
 *
 * The accepted clients are described by what the store uses of them rather than by node-redis's
 * own generic types: those are not assignable to one another (a `createCluster()` result is not
 * a `RedisClusterType<any, …>`), so they would turn real clients away.
 */

/** A listener of pub/sub messages, as node-redis calls it. */
type PubSubListener = (message: string, channel: string) => unknown;

/** What both kinds of pub/sub connection have: node-redis clients are EventEmitters. */
interface Connection {
  on(event: string, listener: () => void): unknown;
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
}

/** What the store uses of a second connection it opens for pub/sub, on one server. */
export interface SubscriberClientLike extends Connection {
  subscribe(channel: string, listener: PubSubListener): Promise<void>;
  unsubscribe(channel: string, listener: PubSubListener): Promise<void>;
}

/** What the store uses of a second connection it opens for pub/sub, on a cluster. */
export interface SubscriberClusterLike extends Connection {
  sSubscribe(channel: string, listener: PubSubListener): Promise<void>;
  sUnsubscribe(channel: string, listener: PubSubListener): Promise<void>;
  /**
   * The masters, each with the client of its sharded pub/sub connection once one is open
   * (node-redis's `ShardNode.pubSub`).
   */
  readonly masters: readonly { pubSub?: { client?: { on(event: string, listener: () => void): unknown } } }[];
}

/**
 * A client from `createClient()` of the `redis` package (node-redis v5), with any modules,
 * scripts, RESP version or type mapping: the part of it the store uses.
 */
export interface RedisClientLike {
  sendCommand(args: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  duplicate(): SubscriberClientLike;
}

/** A client from `createCluster()` of the `redis` package (node-redis v5): the part the store uses. */
export interface RedisClusterLike {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  readonly masters: readonly unknown[];
  nodeClient(node: unknown): Promise<{ ping(): Promise<unknown> }>;
  duplicate(overrides: { minimizeConnections: boolean }): SubscriberClusterLike;
}

/** What the store accepts as `redis`: a connected client or cluster client of node-redis v5. */
export type RedisConnection = RedisClientLike | RedisClusterLike;

/** Called with each message published on a channel the subscriber listens to. */
export type MessageHandler = (message: string) => void;

/** A dedicated pub/sub connection (or, on a cluster, a set of per-node ones). */
export interface Subscriber {
  subscribe(channel: string, handler: MessageHandler): Promise<void>;
  unsubscribe(channel: string, handler: MessageHandler): Promise<void>;
  /**
   * Calls `callback` once the connection (on a cluster: a shard's connection) is back and
   * resubscribed after a loss, when messages may have been missed.
   */
  onReconnect(callback: () => void): void;
  close(): Promise<void>;
}

/** Sends commands and opens subscribers, whichever kind of client is behind. */
export interface Commands {
  /** Whether the client talks to a Redis Cluster, so change notifications use sharded pub/sub. */
  readonly sharded: boolean;
  /** Sends a command; on a cluster it goes to the master of `key`'s slot. */
  send(key: string, args: string[]): Promise<unknown>;
  /** Resolves when every server (every master of a cluster) answers PING. */
  ping(): Promise<void>;
  /** Opens a new connection for pub/sub with the same options as the given client. */
  openSubscriber(): Promise<Subscriber>;
}

export function isCluster(redis: RedisConnection): redis is RedisClusterLike {
  return typeof (redis as Partial<RedisClusterLike>).nodeClient === "function";
}

export function commandsOf(redis: RedisConnection): Commands {
  return isCluster(redis) ? clusterCommands(redis) : clientCommands(redis);
}

function clientCommands(client: RedisClientLike): Commands {
  return {
    sharded: false,
    send: function send(_key, args) {
      return client.sendCommand(args);
    },
    ping: async function ping() {
      await client.ping();
    },
    openSubscriber: async function openSubscriber() {
      const connection = client.duplicate();
      // Without a listener, a connection error would be thrown as an unhandled 'error' event;
      // node-redis reconnects by itself and resubscribes, and onReconnect wakes the listeners up.
      connection.on("error", ignoreError);
      await connectOrDestroy(connection);
      return {
        subscribe: (channel, handler) => connection.subscribe(channel, handler),
        unsubscribe: (channel, handler) => connection.unsubscribe(channel, handler),
        onReconnect: function onReconnect(callback) {
          // 'ready' fires again after every reconnect, once the channels are subscribed again;
          // the first one came before connect() resolved.
          connection.on("ready", callback);
        },
        close: () => connection.close(),
      };
    },
  };
}

function clusterCommands(cluster: RedisClusterLike): Commands {
  return {
    sharded: true,
    send: function send(key, args) {
      // Never to a replica (isReadonly false): a read must see the write made just before.
      return cluster.sendCommand(key, false, args);
    },
    ping: async function ping() {
      await Promise.all(cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()));
    },
    openSubscriber: async function openSubscriber() {
      // minimizeConnections: only the per-shard pub/sub connections are opened, on demand.
      const connection = cluster.duplicate({ minimizeConnections: true });
      connection.on("error", ignoreError);
      await connectOrDestroy(connection);
      const callbacks: (() => void)[] = [];
      const watched = new WeakSet<object>();
      // Each shard has a pub/sub client of its own, opened on its first subscription, which
      // reconnects and resubscribes by itself and then says 'ready' again (the cluster reports
      // only the first 'ready' of a node). Watch every such client once it exists.
      const watchShards = (): void => {
        for (const master of connection.masters) {
          const client = master.pubSub?.client;
          if (!client || watched.has(client)) continue;
          watched.add(client);
          // Watched once its subscription went through, so its first 'ready' has passed: a later
          // one is a comeback (or, for a shard still connecting, a spurious wake, which is allowed).
          client.on("ready", () => {
            for (const callback of callbacks) callback();
          });
        }
      };
      return {
        subscribe: async (channel, handler) => {
          await connection.sSubscribe(channel, handler);
          watchShards();
        },
        unsubscribe: (channel, handler) => connection.sUnsubscribe(channel, handler),
        onReconnect: (callback) => {
          callbacks.push(callback);
        },
        close: () => connection.close(),
      };
    },
  };
}

/** A connection that failed to open must not stay behind, retrying. */
async function connectOrDestroy(connection: SubscriberClientLike | SubscriberClusterLike): Promise<void> {
  try {
    await connection.connect();
  } catch (error) {
    if (connection.isOpen) connection.destroy();
    throw error;
  }
}

/** Errors of the subscriber connection surface as missed notifications, which readers tolerate. */
function ignoreError(): void {}

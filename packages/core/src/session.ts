/**
 * Sessions: a run's history lives in the store, so whichever instance runs the next turn of a
 * session sees the earlier turns. History items are served as `/resources/{id}`.
 */
import { createHistoryFetcher, describeUrl, HistoryFetchError, type HistoryFetcher } from "./history-fetch.ts";
import { consoleLogger, type Logger, runFields } from "./logger.ts";
import type { Message, Run } from "./models.ts";
import type { Store } from "./store.ts";

const RESOURCE_PATH = /\/resources\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/**
 * The item id of a history URL that points at a `/resources/{id}` of ours, else undefined. A URL
 * is ours only when its origin is `localOrigin`: another server's `/resources/…` is not read
 * from our store.
 */
export function resourceIdOf(url: string, localOrigin: string | undefined): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.origin === localOrigin ? RESOURCE_PATH.exec(parsed.pathname)?.[1] : undefined;
  } catch {
    return undefined;
  }
}

/** The URL under which an item is served, relative to the deployment's public base URL. */
export function resourceUrl(baseUrl: string, itemId: string): string {
  return `${baseUrl.replace(/\/$/, "")}/resources/${itemId}`;
}

/** How much history one run loads, which descriptor URLs are this deployment's, and where what it left out is logged. */
export interface HistoryBounds {
  /**
   * The origin of this deployment's history URLs (`baseUrl`'s, or the request's): only URLs of
   * this origin are read from the store. @default undefined (none is)
   */
  localOrigin?: string;
  /** Most bytes of messages (as JSON) loaded; the items past it are left out. @default unbounded */
  maxBytes?: number;
  /** Where the line about left-out items goes. @default consoleLogger */
  logger?: Logger;
  /** The run loading the history, and the instance running it: the fields of that line. @default undefined (the session id only) */
  run?: Pick<Run, "run_id" | "session_id" | "agent_name">;
  instanceId?: string;
}

/** Items a run left out of its history, logged in one line when loading ends. */
class LeftOut {
  count = 0;
  readonly #reasons = new Map<string, number>();
  #example: string | undefined;

  add(reason: string, url?: string): void {
    this.count += 1;
    this.#reasons.set(reason, (this.#reasons.get(reason) ?? 0) + 1);
    if (url !== undefined) this.#example ??= describeUrl(url);
  }

  log(sessionId: string, total: number, bounds: HistoryBounds): void {
    if (this.count === 0) return;
    const reasons = [...this.#reasons].map(([reason, times]) => `${times} × ${reason}`).join("; ");
    const example = this.#example === undefined ? "" : ` (the first: ${this.#example})`;
    const fields = bounds.run === undefined ? { session_id: sessionId } : runFields(bounds.run, bounds.instanceId);
    (bounds.logger ?? consoleLogger).warn(
      { ...fields, left_out: this.count, total },
      `${this.count} of ${total} history items left out${example}: ${reasons}`,
    );
  }
}

export class SessionHistory {
  constructor(
    private readonly store: Store,
    readonly sessionId: string,
    /** History URLs from the client's session descriptor, used when the store has no such session. */
    private readonly descriptorUrls: readonly string[] = [],
    /** Loads descriptor URLs that are not items of this deployment; by default none is loaded. */
    private readonly fetchRemote: HistoryFetcher = createHistoryFetcher(),
    /** The id under which the store keeps this session: another than the client's with tenants (see `sessionStoreId`). */
    readonly storeId: string = sessionId,
    /** What one run may load; see {@link HistoryBounds}. */
    private readonly bounds: HistoryBounds = {},
  ) {}

  /**
   * The session's messages in order, from the store, or else from the descriptor's URLs: items of
   * this deployment come from the store, others through the history fetcher. An item that cannot
   * be loaded (refused, unreachable, not a message) is left out; so are the items past
   * `bounds.maxBytes`. A URL given twice is loaded once. One line in the log says what was left
   * out; the run goes on with the rest. Store failures are not caught.
   */
  async *messages(): AsyncGenerator<Message> {
    const leftOut = new LeftOut();
    const maxBytes = this.bounds.maxBytes ?? Number.POSITIVE_INFINITY;
    let bytes = 0;
    let total = 0;
    /** Whether `message` still fits; counts it if so. */
    const fits = (message: Message): boolean => {
      bytes += Buffer.byteLength(JSON.stringify(message), "utf8");
      return bytes <= maxBytes;
    };
    const full = `past ${maxBytes} bytes of history per run (maxHistoryBytes)`;
    try {
      const stored = await this.store.getHistory(this.storeId);
      if (stored !== undefined) {
        total = stored.length;
        for (const [index, item] of stored.entries()) {
          if (!fits(item.message)) {
            for (let rest = index; rest < stored.length; rest++) leftOut.add(full);
            return;
          }
          yield item.message;
        }
        return;
      }
      const urls = [...new Set(this.descriptorUrls)];
      total = urls.length;
      const loaded = new Set<string>();
      for (const [index, url] of urls.entries()) {
        const id = resourceIdOf(url, this.bounds.localOrigin);
        // Two URLs of one item of ours (a trailing slash in the origin, say) load it once too.
        if (id !== undefined && loaded.has(id)) continue;
        if (id !== undefined) loaded.add(id);
        const message = id === undefined ? await this.#fetch(url, leftOut) : await this.#local(id, url, leftOut);
        if (message === undefined) continue;
        if (!fits(message)) {
          for (let rest = index; rest < urls.length; rest++) leftOut.add(full, urls[rest]);
          return;
        }
        yield message;
      }
    } finally {
      leftOut.log(this.sessionId, total, this.bounds);
    }
  }

  async #local(id: string, url: string, leftOut: LeftOut): Promise<Message | undefined> {
    const item = await this.store.getHistoryItem(id);
    if (item === undefined) leftOut.add("not found in this deployment's store", url);
    return item?.message;
  }

  async #fetch(url: string, leftOut: LeftOut): Promise<Message | undefined> {
    try {
      return await this.fetchRemote(url);
    } catch (error) {
      leftOut.add(error instanceof HistoryFetchError ? error.message : "it could not be loaded", url);
      return undefined;
    }
  }
}

/**
 * Sessions: a run's history lives in the store, so whichever instance runs the next turn of a
 * session sees the earlier turns. History items are served as `/resources/{id}`.
 */
import { createHistoryFetcher, describeUrl, HistoryFetchError, type HistoryFetcher } from "./history-fetch.ts";
import type { Message } from "./models.ts";
import type { Store } from "./store.ts";

const RESOURCE_PATH = /\/resources\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The item id of a history URL that points at a `/resources/{id}` of ours, else undefined. */
export function resourceIdOf(url: string): string | undefined {
  try {
    return RESOURCE_PATH.exec(new URL(url).pathname)?.[1];
  } catch {
    return undefined;
  }
}

/** The URL under which an item is served, relative to the deployment's public base URL. */
export function resourceUrl(baseUrl: string, itemId: string): string {
  return `${baseUrl.replace(/\/$/, "")}/resources/${itemId}`;
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
  ) {}

  /**
   * The session's messages in order, from the store, or else from the descriptor's URLs: items of
   * this deployment come from the store, others through the history fetcher. An item that cannot
   * be loaded (refused, unreachable, not a message) is left out with a warning in the log; the
   * run goes on with the rest. Store failures are not caught.
   */
  async *messages(): AsyncGenerator<Message> {
    const stored = await this.store.getHistory(this.storeId);
    if (stored !== undefined) {
      for (const item of stored) yield item.message;
      return;
    }
    for (const url of this.descriptorUrls) {
      const id = resourceIdOf(url);
      const item = id === undefined ? undefined : await this.store.getHistoryItem(id);
      const message = item?.message ?? (await this.#fetch(url));
      if (message !== undefined) yield message;
    }
  }

  async #fetch(url: string): Promise<Message | undefined> {
    try {
      return await this.fetchRemote(url);
    } catch (error) {
      const reason = error instanceof HistoryFetchError ? error.message : "it could not be loaded";
      console.warn(`[acp] session ${this.sessionId}: history item ${describeUrl(url)} left out: ${reason}`);
      return undefined;
    }
  }
}

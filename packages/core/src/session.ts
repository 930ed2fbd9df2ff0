/**
 * Sessions: a run's history lives in the store, so whichever instance runs the next turn of a
 * session sees the earlier turns. History items are served as `/resources/{id}`.
 */
import type { Message } from "./models.ts";
import type { HistoryItem, Store } from "./store.ts";

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
  ) {}

  /** The session's messages in order, from the store (or the descriptor's resources). */
  async *messages(): AsyncGenerator<Message> {
    const stored = await this.store.getHistory(this.sessionId);
    if (stored !== undefined) {
      for (const item of stored) yield item.message;
      return;
    }
    for (const url of this.descriptorUrls) {
      const id = resourceIdOf(url);
      const item = id === undefined ? undefined : await this.store.getHistoryItem(id);
      if (item !== undefined) yield item.message;
    }
  }

  append(items: HistoryItem[]): Promise<void> {
    return this.store.appendHistory(this.sessionId, items);
  }
}

/**
 * Where everything lives in Redis. The keys of one run share the hash tag `{run:<id>}`, and the
 * keys of one session share `{session:<id>}`, so that the Lua scripts touching several of them
 * run on one Redis Cluster node. What is looked up without knowing the run or session (items by
 * id, heartbeats, the active-run index) lives outside those tags.
 */
export class KeyLayout {
  /** Sorted set of the ids of runs that may not have ended, scored by when each was last confirmed. */
  readonly activeRuns: string;

  constructor(readonly prefix: string) {
    this.activeRuns = `${prefix}:active-runs`;
  }

  /** Hash with the run's `version`, whether it `ended`, and the whole record as `json`. */
  runRecord(runId: string): string {
    return `${this.prefix}:{run:${runId}}:record`;
  }

  /** List of the run's events as JSON; the event at index i has seq i + 1. */
  runEvents(runId: string): string {
    return `${this.prefix}:{run:${runId}}:events`;
  }

  /** Pub/sub channel announcing changes of the run; in the run's slot for sharded pub/sub. */
  runChannel(runId: string): string {
    return `${this.prefix}:{run:${runId}}:changes`;
  }

  /** Marks that the session exists, even before it has items. */
  session(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:session`;
  }

  /** List of the session's history items as JSON, in append order. */
  sessionHistory(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:history`;
  }

  /** Hash from item id to the item's index in the session's history list. */
  sessionPositions(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:positions`;
  }

  /** The id of the session that holds the item. */
  item(itemId: string): string {
    return `${this.prefix}:item:${itemId}`;
  }

  /** Present while the instance's lease lasts. */
  instance(instanceId: string): string {
    return `${this.prefix}:instance:${instanceId}`;
  }
}

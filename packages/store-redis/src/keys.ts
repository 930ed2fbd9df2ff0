/**
 * Where everything lives in Redis. The keys of one run share the hash tag `{run:<id>}`, and the
 * keys of one session share `{session:<id>}`, so that the Lua scripts touching several of them
 * run on one Redis Cluster node. The runs an instance owns share `{owner:<id>}`. What is looked
 * up without knowing the run or session (items by id, heartbeats, the owners) lives outside those tags.
 */
export class KeyLayout {
  /**
   * Sorted set of the instances that own runs not ended, scored by when that was last confirmed
   * (a run added, a heartbeat): as long as the number of instances, read whole by the orphan search.
   */
  readonly owners: string;
  /** Written by contract-1 stores (one entry per active run); read only until it expires. */
  readonly legacyActiveRuns: string;

  constructor(readonly prefix: string) {
    this.owners = `${prefix}:owners`;
    this.legacyActiveRuns = `${prefix}:active-runs`;
  }

  /** Sorted set of the runs not ended that the instance owns, scored by when each was added. */
  ownerRuns(instanceId: string): string {
    return `${this.prefix}:{owner:${instanceId}}:runs`;
  }

  /**
   * Hash with the run's `version`, whether it `ended`, its `owner`, its `epoch` (absent when a
   * contract-2 store wrote it: epoch 1), and the whole record as `json`.
   */
  runRecord(runId: string): string {
    return `${this.prefix}:{run:${runId}}:record`;
  }

  /** List of the run's events as JSON; the event at index i has seq i + 1. */
  runEvents(runId: string): string {
    return `${this.prefix}:{run:${runId}}:events`;
  }

  /** Hash from step index to the step as JSON: the recorded steps of a durable run. */
  runSteps(runId: string): string {
    return `${this.prefix}:{run:${runId}}:steps`;
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

  /** List of the ids of the session's items, in append order (read without the messages). */
  sessionIds(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:ids`;
  }

  /**
   * Hash with the session's `bytes` (the sum of its items' sizes) and `pointers-until`, until
   * when (server time, ms) every item's pointer is known to live.
   */
  sessionSummary(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:summary`;
  }

  /** Hash from item id to the item's index in the session's history list. */
  sessionPositions(sessionId: string): string {
    return `${this.prefix}:{session:${sessionId}}:positions`;
  }

  /** The id of the session that holds the item; lives up to twice the TTL (see APPEND_HISTORY). */
  item(itemId: string): string {
    return `${this.prefix}:item:${itemId}`;
  }

  /** Present while the instance's lease lasts. */
  instance(instanceId: string): string {
    return `${this.prefix}:instance:${instanceId}`;
  }
}

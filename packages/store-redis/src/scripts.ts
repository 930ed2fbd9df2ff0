/**
 * The Lua scripts behind every step that must be atomic, and how they are run: EVALSHA first,
 * EVAL when the server does not know the script yet (first use, restart, failover). Every value
 * reaches a script as an argument; the sources are constants.
 *
 * Run scripts take KEYS = [record, events, steps] and start ARGV with the same three values:
 * ARGV[1] "1" to notify with SPUBLISH (cluster) or "0" for PUBLISH, ARGV[2] the run's channel,
 * ARGV[3] the TTL in milliseconds.
 */
import { createHash } from "node:crypto";
import type { Commands } from "./connection.ts";

/**
 * Prepended to the run scripts: names the keys and the three arguments they share, and the
 * helpers they use.
 */
const RUN_PRELUDE = `
local recordKey = KEYS[1]
local eventsKey = KEYS[2]
local stepsKey = KEYS[3]
local sharded = ARGV[1] == '1'
local channel = ARGV[2]
local ttl = ARGV[3]

-- Pushes ARGV[first], ARGV[first + 1], … onto the log. unpack() has a stack limit, so long
-- batches go in chunks. Returns the log's length.
local function pushEvents(first)
  local length = redis.call('LLEN', eventsKey)
  local i = first
  while i <= #ARGV do
    local last = math.min(i + 999, #ARGV)
    length = redis.call('RPUSH', eventsKey, unpack(ARGV, i, last))
    i = last + 1
  end
  return length
end
local function refresh()
  redis.call('PEXPIRE', recordKey, ttl)
  redis.call('PEXPIRE', eventsKey, ttl)
  redis.call('PEXPIRE', stepsKey, ttl)
end
-- The ownership epoch of the stored record; a record without one (written by a contract-2
-- store, or without an epoch) is at epoch 1.
local function storedEpoch(value)
  return value or '1'
end
-- "events", or "record:<version>" so that the writer can tell its own changes from others'.
local function notify(kind)
  redis.call(sharded and 'SPUBLISH' or 'PUBLISH', channel, kind)
end
`;

/**
 * ARGV[4] the record as JSON, ARGV[5] "1" when its status is terminal, ARGV[6] its owner,
 * ARGV[7] its epoch, ARGV[8..] events as JSON. Returns 1, or 0 when the run exists (nothing
 * written). A leftover log and leftover steps are dropped first, so a run created again under an
 * expired id never shows the old events or steps.
 */
const CREATE_RUN = `${RUN_PRELUDE}
local recordJson = ARGV[4]
local ended = ARGV[5]
local owner = ARGV[6]
local epoch = ARGV[7]
local firstEvent = 8

if redis.call('EXISTS', recordKey) == 1 then return 0 end
redis.call('HSET', recordKey, 'version', '1', 'ended', ended, 'owner', owner, 'epoch', epoch, 'json', recordJson)
redis.call('DEL', eventsKey, stepsKey)
pushEvents(firstEvent)
refresh()
notify('record:1')
return 1
`;

/**
 * ARGV[4] the expected version, ARGV[5] the new version, ARGV[6] "1" when the new status is
 * terminal, ARGV[7] the new record as JSON (with the new version), ARGV[8] its owner, ARGV[9]
 * its epoch, ARGV[10..] events as JSON. Returns {1, lastSeq, previousOwner} when applied ("" when a contract-1 store
 * wrote the record), {0, currentJson} when the version differs, {0} when unknown.
 */
const UPDATE_RUN = `${RUN_PRELUDE}
local expectedVersion = ARGV[4]
local newVersion = ARGV[5]
local ended = ARGV[6]
local recordJson = ARGV[7]
local owner = ARGV[8]
local epoch = ARGV[9]
local firstEvent = 10

local current = redis.call('HMGET', recordKey, 'version', 'json', 'owner')
if not current[1] then return {0} end
if current[1] ~= expectedVersion then return {0, current[2]} end
redis.call('HSET', recordKey, 'version', newVersion, 'ended', ended, 'owner', owner, 'epoch', epoch, 'json', recordJson)
local length = pushEvents(firstEvent)
refresh()
notify('record:' .. newVersion)
return {1, length, current[3] or ''}
`;

/**
 * KEYS = [record, events, steps]; ARGV[1] the instance, ARGV[2] the TTL in milliseconds. Restarts
 * the TTL of a run the instance owns that has not ended, with its events and steps. Returns 1 when
 * it did, 0 when the run is unknown or expired, -1 when it ended or has another owner (its entry
 * in the instance's set is stale).
 */
const REFRESH_OWNED_RUN = `
local recordKey = KEYS[1]
local eventsKey = KEYS[2]
local stepsKey = KEYS[3]
local instance = ARGV[1]
local ttl = ARGV[2]

local state = redis.call('HMGET', recordKey, 'ended', 'owner')
if not state[1] then return 0 end
if state[1] ~= '0' or state[2] ~= instance then return -1 end
redis.call('PEXPIRE', recordKey, ttl)
redis.call('PEXPIRE', eventsKey, ttl)
redis.call('PEXPIRE', stepsKey, ttl)
return 1
`;

/**
 * KEYS = [the instance's set of runs]; ARGV[1] the run, ARGV[2] the TTL in milliseconds, ARGV[3]
 * the time (ms) to score it with. Adds the run and restarts the set's TTL. Called before the
 * run's own write (another slot), so the set always holds every run not ended of its instance,
 * and may hold more. Returns how many runs the set held before: 0 means a search may have
 * forgotten the instance among the owners, which the caller must then confirm again.
 */
const OWN_RUN = `
local ownerRunsKey = KEYS[1]
local runId = ARGV[1]
local ttl = ARGV[2]
local now = ARGV[3]
local before = redis.call('ZCARD', ownerRunsKey)
redis.call('ZADD', ownerRunsKey, now, runId)
redis.call('PEXPIRE', ownerRunsKey, ttl)
return before
`;

/**
 * KEYS = [owners]; ARGV[1] the instance, ARGV[2] a time (ms). Forgets an instance confirmed last
 * before that time, so that an instance confirmed since (it added a run) stays.
 */
const FORGET_OWNER = `
local ownersKey = KEYS[1]
local instance = ARGV[1]
local searchStarted = tonumber(ARGV[2])
local score = redis.call('ZSCORE', ownersKey, instance)
if score and tonumber(score) < searchStarted then
  redis.call('ZREM', ownersKey, instance)
  return 1
end
return 0
`;

/**
 * ARGV[4] the writer's epoch, or "" to append whatever the stored epoch; ARGV[5..] events as
 * JSON. Returns the log's new length, or nil when the run is unknown, has ended, or is at another
 * epoch than the writer's (a former owner: fenced). Nothing is written then.
 */
const APPEND_EVENTS = `${RUN_PRELUDE}
local epoch = ARGV[4]
local firstEvent = 5

local state = redis.call('HMGET', recordKey, 'ended', 'epoch')
if state[1] ~= '0' then return nil end
if epoch ~= '' and storedEpoch(state[2]) ~= epoch then return nil end
local length = pushEvents(firstEvent)
if #ARGV >= firstEvent then
  refresh()
  notify('events')
end
return length
`;

/**
 * ARGV[4] the writer's epoch, ARGV[5] the step's index, ARGV[6] the step as JSON. Stores the step
 * unless the run is unknown, has ended, is at another epoch, or holds a step at that index.
 * Returns 1 when stored, else 0. Subscribers are not notified: nobody waits for steps.
 */
const RECORD_STEP = `${RUN_PRELUDE}
local epoch = ARGV[4]
local index = ARGV[5]
local stepJson = ARGV[6]

local state = redis.call('HMGET', recordKey, 'ended', 'epoch')
if state[1] ~= '0' or storedEpoch(state[2]) ~= epoch then return 0 end
if redis.call('HSETNX', stepsKey, index, stepJson) == 0 then return 0 end
refresh()
return 1
`;

/**
 * KEYS = [session, history, positions, ids, summary]; ARGV[1] the TTL in milliseconds, then
 * triples of item id, item JSON and the item's size. Items whose id the session holds already are
 * skipped (a retried write). O(1) per item appended.
 *
 * Item pointers (`item:<id>`, in other slots) are written by the caller with twice the TTL. The
 * session lives a TTL past its last append, so they outlive it until a TTL after they were
 * written; `pointers-until` says until when all of them live. Only when that is less than a TTL
 * away are all the older pointers refreshed, by the caller: at most once per TTL of a session's life.
 * Returns the ids of the older items whose pointers the caller must refresh (usually none).
 */
const APPEND_HISTORY = `
local sessionKey = KEYS[1]
local historyKey = KEYS[2]
local positionsKey = KEYS[3]
local idsKey = KEYS[4]
local summaryKey = KEYS[5]
local ttl = tonumber(ARGV[1])
local firstItem = 2

local position = redis.call('LLEN', historyKey)
-- A session written by a contract-1 store has no id list yet: build it once, sizes estimated.
if redis.call('LLEN', idsKey) < position then
  redis.call('DEL', idsKey)
  local ids = {}
  local positions = redis.call('HGETALL', positionsKey)
  for i = 1, #positions, 2 do ids[tonumber(positions[i + 1]) + 1] = positions[i] end
  local bytes = 0
  for _, json in ipairs(redis.call('LRANGE', historyKey, 0, -1)) do bytes = bytes + #json end
  for i = 1, #ids, 1000 do redis.call('RPUSH', idsKey, unpack(ids, i, math.min(i + 999, #ids))) end
  redis.call('HSET', summaryKey, 'bytes', bytes)
end
local older = position
for i = firstItem, #ARGV, 3 do
  local itemId, itemJson, size = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', positionsKey, itemId) == 0 then
    redis.call('RPUSH', historyKey, itemJson)
    redis.call('RPUSH', idsKey, itemId)
    redis.call('HSET', positionsKey, itemId, position)
    redis.call('HINCRBY', summaryKey, 'bytes', size)
    position = position + 1
  end
end
redis.call('SET', sessionKey, '1', 'PX', ttl)
for _, key in ipairs({ historyKey, positionsKey, idsKey, summaryKey }) do redis.call('PEXPIRE', key, ttl) end

local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local pointersUntil = tonumber(redis.call('HGET', summaryKey, 'pointers-until') or '0')
if pointersUntil >= ms + ttl then return {} end
redis.call('HSET', summaryKey, 'pointers-until', ms + 2 * ttl)
if older == 0 then return {} end
return redis.call('LRANGE', idsKey, 0, older - 1)
`;

/**
 * KEYS = [session, ids, summary, history]. Returns {exists, ids, bytes}; exists is 2 for a
 * session written by a contract-1 store (no id list yet), whose caller reads the history instead.
 */
const READ_SESSION = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
if #ids < redis.call('LLEN', KEYS[4]) then return {2} end
return {1, ids, redis.call('HGET', KEYS[3], 'bytes') or '0'}
`;

/** KEYS = [history, positions]; ARGV[1] the item id. Returns the item's JSON, or nil. */
const READ_HISTORY_ITEM = `
local historyKey = KEYS[1]
local positionsKey = KEYS[2]
local itemId = ARGV[1]

local position = redis.call('HGET', positionsKey, itemId)
if not position then return nil end
return redis.call('LINDEX', historyKey, position)
`;

/**
 * Error codes with which Redis answers a script call when the server, not the script's input,
 * is the problem (busy, out of memory, a failover, a moved slot): outages, worth a retry.
 */
const OUTAGE_CODES = new Set([
  "BUSY",
  "OOM",
  "READONLY",
  "MOVED",
  "ASK",
  "TRYAGAIN",
  "CLUSTERDOWN",
  "LOADING",
  "MASTERDOWN",
  "NOREPLICAS",
  "NOSCRIPT",
]);

/**
 * Whether `error` is Redis's answer that the script ran and failed (a runtime error in Lua, a
 * command of the script refused: `WRONGTYPE`, `ERR …`): the same call would fail again. A
 * connection failure has no error code and is not one.
 */
function isScriptFailure(error: unknown): error is Error {
  // node-redis answers with an ErrorReply (or its SimpleError) for a Redis error reply.
  if (!(error instanceof Error) || !/^(ErrorReply|SimpleError)$/.test(error.constructor.name)) return false;
  const code = /^[A-Z]+/.exec(error.message)?.[0];
  return code !== undefined && !OUTAGE_CODES.has(code);
}

/** A script that Redis ran and that failed: its input was refused, not an outage. */
export class ScriptFailed extends Error {
  constructor(readonly reply: Error) {
    super(reply.message, { cause: reply });
    this.name = "ScriptFailed";
  }
}

/** A Lua script with its SHA1, run by EVALSHA with a fallback to EVAL. */
export class Script {
  readonly sha1: string;

  constructor(readonly source: string) {
    this.sha1 = createHash("sha1").update(source).digest("hex");
  }

  /**
   * @throws ScriptFailed when Redis ran the script and it failed (see {@link isScriptFailure});
   * any other failure as it came.
   */
  async run(commands: Commands, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      try {
        return await commands.send(keys[0]!, ["EVALSHA", this.sha1, ...tail]);
      } catch (error) {
        if (!(error instanceof Error && error.message.startsWith("NOSCRIPT"))) throw error;
        // EVAL also caches the script on that server, so the next EVALSHA finds it.
        return await commands.send(keys[0]!, ["EVAL", this.source, ...tail]);
      }
    } catch (error) {
      throw isScriptFailure(error) ? new ScriptFailed(error) : error;
    }
  }
}

export const scripts = {
  createRun: new Script(CREATE_RUN),
  updateRun: new Script(UPDATE_RUN),
  appendEvents: new Script(APPEND_EVENTS),
  recordStep: new Script(RECORD_STEP),
  refreshOwnedRun: new Script(REFRESH_OWNED_RUN),
  ownRun: new Script(OWN_RUN),
  forgetOwner: new Script(FORGET_OWNER),
  appendHistory: new Script(APPEND_HISTORY),
  readSession: new Script(READ_SESSION),
  readHistoryItem: new Script(READ_HISTORY_ITEM),
};

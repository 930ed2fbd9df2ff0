/**
 * The Lua scripts behind every step that must be atomic, and how they are run: EVALSHA first,
 * EVAL when the server does not know the script yet (first use, restart, failover). Every value
 * reaches a script as an argument; the sources are constants.
 *
 * Run scripts take KEYS = [record, events] and start ARGV with the same three values:
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
end
-- "events", or "record:<version>" so that the writer can tell its own changes from others'.
local function notify(kind)
  redis.call(sharded and 'SPUBLISH' or 'PUBLISH', channel, kind)
end
`;

/**
 * ARGV[4] the record as JSON, ARGV[5] "1" when its status is terminal, ARGV[6..] events as JSON.
 * Returns 1, or 0 when the run exists (nothing written). A leftover log is dropped first, so a run
 * created again under an expired id never shows the old events.
 */
const CREATE_RUN = `${RUN_PRELUDE}
local recordJson = ARGV[4]
local ended = ARGV[5]
local firstEvent = 6

if redis.call('EXISTS', recordKey) == 1 then return 0 end
redis.call('HSET', recordKey, 'version', '1', 'ended', ended, 'json', recordJson)
redis.call('DEL', eventsKey)
pushEvents(firstEvent)
refresh()
notify('record:1')
return 1
`;

/**
 * ARGV[4] the expected version, ARGV[5] the new version, ARGV[6] "1" when the new status is
 * terminal, ARGV[7] the new record as JSON (with the new version), ARGV[8..] events as JSON.
 * Returns {1, lastSeq} when applied, {0, currentJson} when the version differs, {0} when unknown.
 */
const UPDATE_RUN = `${RUN_PRELUDE}
local expectedVersion = ARGV[4]
local newVersion = ARGV[5]
local ended = ARGV[6]
local recordJson = ARGV[7]
local firstEvent = 8

local current = redis.call('HMGET', recordKey, 'version', 'json')
if not current[1] then return {0} end
if current[1] ~= expectedVersion then return {0, current[2]} end
redis.call('HSET', recordKey, 'version', newVersion, 'ended', ended, 'json', recordJson)
local length = pushEvents(firstEvent)
refresh()
notify('record:' .. newVersion)
return {1, length}
`;

/**
 * ARGV[4..] events as JSON. Returns the log's new length, or nil when the run is unknown or
 * has ended (nothing written).
 */
const APPEND_EVENTS = `${RUN_PRELUDE}
local firstEvent = 4

if redis.call('HGET', recordKey, 'ended') ~= '0' then return nil end
local length = pushEvents(firstEvent)
if #ARGV >= firstEvent then
  refresh()
  notify('events')
end
return length
`;

/**
 * KEYS = [session, history, positions]; ARGV[1] the TTL in milliseconds, then pairs of item id
 * and item JSON. Items whose id the session holds already are skipped (a retried write).
 * Returns the ids of every item of the session, whose pointers the caller refreshes.
 */
const APPEND_HISTORY = `
local sessionKey = KEYS[1]
local historyKey = KEYS[2]
local positionsKey = KEYS[3]
local ttl = ARGV[1]
local firstItem = 2

local position = redis.call('LLEN', historyKey)
for i = firstItem, #ARGV, 2 do
  local itemId, itemJson = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', positionsKey, itemId) == 0 then
    redis.call('RPUSH', historyKey, itemJson)
    redis.call('HSET', positionsKey, itemId, position)
    position = position + 1
  end
end
redis.call('SET', sessionKey, '1', 'PX', ttl)
redis.call('PEXPIRE', historyKey, ttl)
redis.call('PEXPIRE', positionsKey, ttl)
return redis.call('HKEYS', positionsKey)
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

/** A Lua script with its SHA1, run by EVALSHA with a fallback to EVAL. */
export class Script {
  readonly sha1: string;

  constructor(readonly source: string) {
    this.sha1 = createHash("sha1").update(source).digest("hex");
  }

  async run(commands: Commands, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await commands.send(keys[0]!, ["EVALSHA", this.sha1, ...tail]);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith("NOSCRIPT"))) throw error;
      // EVAL also caches the script on that server, so the next EVALSHA finds it.
      return await commands.send(keys[0]!, ["EVAL", this.source, ...tail]);
    }
  }
}

export const scripts = {
  createRun: new Script(CREATE_RUN),
  updateRun: new Script(UPDATE_RUN),
  appendEvents: new Script(APPEND_EVENTS),
  appendHistory: new Script(APPEND_HISTORY),
  readHistoryItem: new Script(READ_HISTORY_ITEM),
};

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

/** Shared helpers, prepended to the run scripts. */
const RUN_PRELUDE = `
local function push(key, first)
  -- unpack() has a stack limit, so long batches go in chunks.
  local length = redis.call('LLEN', key)
  local i = first
  while i <= #ARGV do
    local last = math.min(i + 999, #ARGV)
    length = redis.call('RPUSH', key, unpack(ARGV, i, last))
    i = last + 1
  end
  return length
end
local function refresh()
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
-- "events", or "record:<version>" so that the writer can tell its own changes from others'.
local function notify(kind)
  redis.call(ARGV[1] == '1' and 'SPUBLISH' or 'PUBLISH', ARGV[2], kind)
end
`;

/**
 * ARGV[4] the record as JSON, ARGV[5] "1" when its status is terminal, ARGV[6..] events as JSON.
 * Returns 1, or 0 when the run exists (nothing written). A leftover log is dropped first, so a run
 * created again under an expired id never shows the old events.
 */
const CREATE_RUN = `${RUN_PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'version', '1', 'ended', ARGV[5], 'json', ARGV[4])
redis.call('DEL', KEYS[2])
push(KEYS[2], 6)
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
local current = redis.call('HMGET', KEYS[1], 'version', 'json')
if not current[1] then return {0} end
if current[1] ~= ARGV[4] then return {0, current[2]} end
redis.call('HSET', KEYS[1], 'version', ARGV[5], 'ended', ARGV[6], 'json', ARGV[7])
local length = push(KEYS[2], 8)
refresh()
notify('record:' .. ARGV[5])
return {1, length}
`;

/**
 * ARGV[4..] events as JSON. Returns the log's new length, or nil when the run is unknown or
 * has ended (nothing written).
 */
const APPEND_EVENTS = `${RUN_PRELUDE}
if redis.call('HGET', KEYS[1], 'ended') ~= '0' then return nil end
local length = push(KEYS[2], 4)
if #ARGV >= 4 then
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
local position = redis.call('LLEN', KEYS[2])
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    redis.call('HSET', KEYS[3], ARGV[i], position)
    position = position + 1
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return redis.call('HKEYS', KEYS[3])
`;

/** KEYS = [history, positions]; ARGV[1] the item id. Returns the item's JSON, or nil. */
const READ_HISTORY_ITEM = `
local position = redis.call('HGET', KEYS[2], ARGV[1])
if not position then return nil end
return redis.call('LINDEX', KEYS[1], position)
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

/**
 * `@acp/core/testing`: the conformance suite that every `Store` backend runs against itself, and
 * the fixtures it is built from (runs, events, history items, a listener probe), for a store's
 * own tests.
 * @module
 */
export { describeStoreConformance } from "./conformance.ts";
export {
  historyItem,
  ListenerProbe,
  label,
  labelOf,
  NOTIFY_TIMEOUT_MS,
  newRun,
  runEvent,
  signalled,
  sleep,
  stepRecord,
  textMessage,
  within,
  withStatus,
  writeHistory,
} from "./fixtures.ts";
export type { ConformanceTarget, TestApi } from "./target.ts";

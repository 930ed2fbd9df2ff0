/**
 * `@acp/core/testing`: the conformance suite that every `Store` backend runs against itself.
 * @module
 */
export { describeStoreConformance } from "./conformance.ts";
export type { ConformanceTarget, TestApi } from "./target.ts";

/** The whole store conformance suite, one `describe` per group. */
import { describeConcurrency } from "./concurrency.ts";
import { describeContract } from "./contract.ts";
import { describeDurable } from "./durable.ts";
import { describeEvents } from "./events.ts";
import { describeHeads } from "./heads.ts";
import { describeInstances } from "./instances.ts";
import { describeOrphanedRuns } from "./orphaned-runs.ts";
import { describeRefusals } from "./refusals.ts";
import { describeRuns } from "./runs.ts";
import { describeSessions } from "./sessions.ts";
import { describeSubscribe } from "./subscribe.ts";
import type { ConformanceTarget, TestApi } from "./target.ts";
import { describeTtl } from "./ttl.ts";
import { describeUpdate } from "./update.ts";

/**
 * Declares the conformance tests of a `Store` backend. Each test creates its own store
 * through `target.create` (and `target.peer`), uses random ids, and releases what it opened.
 * @example
 * import { describe, it } from "vitest";
 * import { describeStoreConformance } from "@acp/core/testing";
 * import { MemoryStore } from "../src/index.ts";
 *
 * describeStoreConformance({ name: "MemoryStore", create: async ({ ttlMs }) => new MemoryStore({ ttlMs }) }, { describe, it });
 */
export function describeStoreConformance(target: ConformanceTarget, t: TestApi): void {
  t.describe(`${target.name} conformance`, () => {
    describeContract(target, t);
    describeRuns(target, t);
    describeUpdate(target, t);
    describeEvents(target, t);
    describeHeads(target, t);
    describeSubscribe(target, t);
    describeSessions(target, t);
    describeInstances(target, t);
    describeOrphanedRuns(target, t);
    describeRefusals(target, t);
    describeDurable(target, t);
    describeTtl(target, t);
    describeConcurrency(target, t);
  });
}

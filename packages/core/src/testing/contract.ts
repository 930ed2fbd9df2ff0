/** Conformance: the store says which contract it implements, and it is the one this core needs. */
import assert from "node:assert/strict";
import { STORE_CONTRACT_VERSION } from "../store/contract.ts";
import { type ConformanceTarget, type TestApi, withStores } from "./target.ts";

export function describeContract(target: ConformanceTarget, { describe, it }: TestApi): void {
  describe("contract", () => {
    it(`declares contractVersion ${STORE_CONTRACT_VERSION} or later`, async () => {
      await withStores(target, async ({ store, peer }) => {
        for (const opened of [store, peer]) {
          assert.equal(typeof opened.contractVersion, "number", "the store declares no contractVersion");
          assert.ok(
            opened.contractVersion >= STORE_CONTRACT_VERSION,
            `the store implements contract ${opened.contractVersion}, core needs ${STORE_CONTRACT_VERSION}`,
          );
        }
      });
    });
  });
}

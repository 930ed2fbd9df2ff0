import { describe, expect, it } from "vitest";
import { DEFAULT_TTL_MS, resolveTtlMs } from "./options.ts";

describe("resolveTtlMs", () => {
  it("defaults to one hour", () => {
    expect(resolveTtlMs(undefined, "store-test")).toBe(DEFAULT_TTL_MS);
    expect(DEFAULT_TTL_MS).toBe(60 * 60 * 1000);
  });

  it("keeps a positive number as it is", () => {
    expect(resolveTtlMs(1.5, "store-test")).toBe(1.5);
    expect(resolveTtlMs(86_400_000, "store-test")).toBe(86_400_000);
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, "60000"])(
    "refuses %s with a RangeError naming the package",
    (ttlMs) => {
      expect(() => resolveTtlMs(ttlMs as number, "store-test")).toThrow(RangeError);
      expect(() => resolveTtlMs(ttlMs as number, "store-test")).toThrow(
        /^\[acp\] \[store-test\] ttlMs must be a positive number of milliseconds, got /,
      );
    },
  );
});

import { describe, expect, it } from "vitest";
import { attemptStore, isStoreRefusal, StoreError, StoreRefusedError, wrapStoreError } from "./store-error.ts";

describe("wrapStoreError", () => {
  it("names the package and the operation, and keeps the cause", () => {
    const cause = new Error("ECONNREFUSED");
    const error = wrapStoreError("store-test", "getRun", cause);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toBe("[acp] [store-test] getRun failed: ECONNREFUSED");
    expect(error.cause).toBe(cause);
  });

  it("passes a StoreError on as it is", () => {
    const inner = new StoreError("store-test", "migrate failed: no");
    expect(wrapStoreError("store-test", "getRun", inner)).toBe(inner);
  });

  it("takes a thrown value that is not an Error", () => {
    expect(wrapStoreError("store-test", "ping", "gone").message).toBe("[acp] [store-test] ping failed: gone");
  });
});

describe("attemptStore", () => {
  it("resolves with the operation's value", async () => {
    await expect(attemptStore("store-test", "getRun", async () => 42)).resolves.toBe(42);
  });

  it("rejects with the failure wrapped", async () => {
    await expect(attemptStore("store-test", "getRun", async () => Promise.reject(new Error("down")))).rejects.toThrow(
      "[acp] [store-test] getRun failed: down",
    );
  });
});

describe("StoreRefusedError", () => {
  it("is a StoreError that isStoreRefusal tells apart from an outage", () => {
    const refused = new StoreRefusedError("store-test", "updateRun refused the value: invalid byte sequence");
    expect(refused).toBeInstanceOf(StoreError);
    expect(refused.name).toBe("StoreRefusedError");
    expect(refused.message).toBe("[acp] [store-test] updateRun refused the value: invalid byte sequence");
    expect(isStoreRefusal(refused)).toBe(true);
    expect(isStoreRefusal(new StoreError("store-test", "getRun failed: ECONNRESET"))).toBe(false);
    expect(wrapStoreError("store-test", "updateRun", refused)).toBe(refused);
  });
});

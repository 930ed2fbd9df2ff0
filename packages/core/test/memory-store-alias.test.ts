/**
 * Core's tests reach @acp/store-memory through an alias to its source (vitest.config.ts). That
 * store must run on this very core, not on a second copy (a built one, say): else `instanceof`
 * checks of core's classes would fail for what the store makes.
 */
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ListenerSet } from "../src/index.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the memory store of core's tests", () => {
  it("uses this core's classes", async () => {
    const add = vi.spyOn(ListenerSet.prototype, "add");
    const store = new MemoryStore();
    const unsubscribe = await store.subscribe(crypto.randomUUID(), () => {});
    expect(add).toHaveBeenCalledTimes(1);
    await unsubscribe();
    await store.close();
  });
});

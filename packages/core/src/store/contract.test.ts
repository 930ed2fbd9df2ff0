import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it } from "vitest";
import { agent } from "../agent.ts";
import { createApp } from "../http/app.ts";
import { Runtime } from "../run/runtime.ts";
import type { Store } from "../store.ts";
import { assertStoreContract, STORE_CONTRACT_VERSION } from "./contract.ts";

const echo = agent({ name: "echo", description: "Echoes its input" }, async function* (input) {
  yield* input;
});

const opened: MemoryStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

/** A working store that declares another contract version (`undefined`: none at all). */
function declaring(contractVersion: number | undefined): Store {
  const memory = new MemoryStore();
  opened.push(memory);
  return new Proxy(memory, {
    get: (target, property) =>
      property === "contractVersion" ? contractVersion : Reflect.get(target, property, target),
  });
}

describe("the store contract", () => {
  it("is declared by MemoryStore at the version this core needs", () => {
    const store = new MemoryStore();
    opened.push(store);
    expect(store.contractVersion).toBe(STORE_CONTRACT_VERSION);
  });

  it("makes createApp refuse a store that implements an older contract, saying what to upgrade", () => {
    const older = STORE_CONTRACT_VERSION - 1;
    expect(() => createApp([echo], { store: declaring(older) })).toThrow(TypeError);
    expect(() => createApp([echo], { store: declaring(older) })).toThrow(
      `[acp] createApp(): the store MemoryStore implements store contract version ${older}, but this @acp/core needs version ${STORE_CONTRACT_VERSION} or later. ` +
        "Upgrade the package that provides MemoryStore",
    );
  });

  it("makes createApp and new Runtime refuse a store that declares no version", () => {
    expect(() => createApp([echo], { store: declaring(undefined) })).toThrow(
      /MemoryStore declares no contractVersion \(it predates versioned store contracts\)/,
    );
    expect(() => new Runtime({ store: declaring(undefined), agents: [echo] })).toThrow(
      /^\[acp\] new Runtime\(\): the store MemoryStore declares no contractVersion/,
    );
  });

  it("accepts the current version and newer ones", () => {
    expect(() => assertStoreContract(declaring(STORE_CONTRACT_VERSION), "test")).not.toThrow();
    expect(() => assertStoreContract(declaring(STORE_CONTRACT_VERSION + 1), "test")).not.toThrow();
  });

  it("names a store without a class as an object", () => {
    const store = { contractVersion: 0 } as unknown as Store;
    expect(() => assertStoreContract(store, "test")).toThrow(
      /^\[acp\] test: the store object implements store contract version 0/,
    );
  });
});

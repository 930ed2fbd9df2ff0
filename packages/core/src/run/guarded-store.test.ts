/**
 * The guarded store over an in-process memory store behind a switchboard: slow calls time out
 * as StoreErrors and can be waited for until they land, backend failures become StoreErrors that
 * keep their cause, a late subscription is ended, and retryOutage retries outages only.
 */
import { MemoryStore } from "@acp/store-memory";
import { describe, expect, it } from "vitest";
import { BackendDown, controlledStore } from "../../test/support/controlled-store.ts";
import { type Store, StoreError, StoreRefusedError } from "../store.ts";
import { label, newRun, sleep } from "../testing/index.ts";
import { guardStore, isStoreOutage, retryOutage, waitLanded, whenLanded } from "./guarded-store.ts";

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: unknown) => error,
  );
}

describe("guardStore", () => {
  it("passes answers through, and close and contractVersion too", async () => {
    const memory = new MemoryStore();
    const guarded = guardStore(memory, 1_000);
    const record = newRun("in-progress");
    expect(await guarded.createRun(record, [label(1)])).toBe(true);
    expect(await guarded.getRun(record.run.run_id)).toEqual(record);
    expect(guarded.contractVersion).toBe(memory.contractVersion);
    await guarded.close?.();
  });

  it("fails a call that does not answer in time with a StoreError, and tells when it has landed", async () => {
    const { store, control } = controlledStore();
    const guarded = guardStore(store, 50);
    control.delayMs.createRun = 400;
    const record = newRun("in-progress");
    const started = Date.now();
    const error = await failure(guarded.createRun(record, []));
    const waited = Date.now() - started;
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toBe("[acp] [core] store.createRun() did not answer within 50 ms");
    expect(waited).toBeGreaterThanOrEqual(45);
    expect(waited).toBeLessThan(350);
    // It timed out, but it runs on: once it has landed, the store holds what it wrote.
    expect(await control.inner.getRun(record.run.run_id)).toBeUndefined();
    const landed = whenLanded(error);
    expect(landed).toBeInstanceOf(Promise);
    await landed;
    expect(await control.inner.getRun(record.run.run_id)).toEqual(record);
  });

  it("turns a backend failure into a StoreError that names the call and keeps the cause", async () => {
    const { store, control } = controlledStore();
    control.failing = new Set(["getRun"]);
    const error = await failure(guardStore(store, 1_000).getRun("x"));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/^\[acp\] \[core\] store\.getRun\(\) failed: connect ECONNREFUSED/);
    expect((error as Error).cause).toBeInstanceOf(BackendDown);
    // Nothing runs on after a failure: there is nothing to wait for.
    expect(whenLanded(error)).toBeUndefined();
  });

  it("turns a call that throws instead of rejecting into a rejected StoreError", async () => {
    const throwing = new Proxy(new MemoryStore(), {
      get(target, property, receiver) {
        if (property === "isAlive") {
          return () => {
            throw new TypeError("bad client state");
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as Store;
    const error = await failure(guardStore(throwing, 1_000).isAlive("x"));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).cause).toBeInstanceOf(TypeError);
  });

  it("passes a store's own StoreError through unchanged", async () => {
    const own = new StoreError("store-test", "the backend said no");
    const refusing = new Proxy(new MemoryStore(), {
      get(target, property, receiver) {
        if (property === "ping") return () => Promise.reject(own);
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as Store;
    expect(await failure(guardStore(refusing, 1_000).ping())).toBe(own);
  });

  it("ends a subscription that came through after its timeout, so that it never calls its listener", async () => {
    const { store, control } = controlledStore();
    const record = newRun("in-progress");
    await store.createRun(record, []);
    control.delayMs.subscribe = 100;
    let calls = 0;
    const error = await failure(guardStore(store, 30).subscribe(record.run.run_id, () => (calls += 1)));
    expect(error).toBeInstanceOf(StoreError);
    await sleep(150);
    await control.inner.appendEvents(record.run.run_id, [label(1)]);
    await sleep(20);
    expect(calls).toBe(0);
  });
});

describe("waitLanded", () => {
  it("resolves once the call has ended, and throws a StoreError if it runs on past the wait", async () => {
    await expect(waitLanded(sleep(10), 500, "an append")).resolves.toBeUndefined();
    const error = await failure(waitLanded(sleep(500), 20, "an earlier append"));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toBe("[acp] [core] an earlier append has not landed yet");
    expect(isStoreOutage(error)).toBe(true);
  });
});

describe("retryOutage", () => {
  const outage = (): StoreError => new StoreError("core", "down");

  it("retries store outages until the call succeeds", async () => {
    let attempts = 0;
    const value = await retryOutage(async () => {
      attempts += 1;
      if (attempts < 3) throw outage();
      return "ok";
    }, Date.now() + 5_000);
    expect({ value, attempts }).toEqual({ value: "ok", attempts: 3 });
  });

  it("does not retry anything but a store outage", async () => {
    let attempts = 0;
    const error = await failure(
      retryOutage(async () => {
        attempts += 1;
        throw new RangeError("a bug, not an outage");
      }, Date.now() + 5_000),
    );
    expect(error).toBeInstanceOf(RangeError);
    expect(attempts).toBe(1);
    expect(isStoreOutage(error)).toBe(false);
  });

  it("does not retry a value the store refused: it is no outage, and would be refused again", async () => {
    let attempts = 0;
    const refused = new StoreRefusedError("store-test", "updateRun refused the value: invalid byte sequence");
    const error = await failure(
      retryOutage(async () => {
        attempts += 1;
        throw refused;
      }, Date.now() + 5_000),
    );
    expect(error).toBe(refused);
    expect(attempts).toBe(1);
    expect(isStoreOutage(refused)).toBe(false);
    // Through the guarded store it keeps its class.
    const { store } = controlledStore();
    const refusing = guardStore(
      new Proxy(store, {
        get: (target, property, receiver) =>
          property === "appendEvents" ? () => Promise.reject(refused) : Reflect.get(target, property, receiver),
      }),
      1_000,
    );
    expect(await failure(refusing.appendEvents("run", []))).toBe(refused);
  });

  it("gives up at its deadline, and when its signal aborts", async () => {
    let attempts = 0;
    const started = Date.now();
    const late = await failure(
      retryOutage(async () => {
        attempts += 1;
        throw outage();
      }, Date.now() + 250),
    );
    expect(late).toBeInstanceOf(StoreError);
    expect(attempts).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(600);
    const signal = { aborted: false };
    attempts = 0;
    const stopped = failure(
      retryOutage(
        async () => {
          attempts += 1;
          signal.aborted = attempts === 2;
          throw outage();
        },
        Number.POSITIVE_INFINITY,
        signal,
      ),
    );
    expect(await stopped).toBeInstanceOf(StoreError);
    expect(attempts).toBe(2);
  });
});

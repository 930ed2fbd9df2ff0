/**
 * A real in-process store (a MemoryStore) behind a switchboard: each method can be made to fail
 * like an unreachable backend, to answer late, or to hang until released, and every call is
 * counted. Tests use it to inject outages and slowness without mocking what a store does.
 */
import { MemoryStore } from "@acp/store-memory";
import type { Store } from "../../src/index.ts";

export type StoreMethod = Exclude<
  { [K in keyof Store]-?: Store[K] extends (...args: never[]) => unknown ? K : never }[keyof Store],
  "close"
>;

export interface StoreControl {
  /** Methods that reject, when the call reaches the backend, as an unreachable one would; `"all"` for every one. */
  failing: Set<StoreMethod> | "all";
  /** Methods that wait this many milliseconds before the call reaches the store (it still lands). */
  delayMs: Partial<Record<StoreMethod, number>>;
  /** Methods whose calls wait until {@link release} is called (then they reach the store). */
  held: Set<StoreMethod>;
  /** Lets every held call through and stops holding. */
  release(): void;
  /** How many times each method was called (failed calls included). */
  calls: Partial<Record<StoreMethod, number>>;
  /** The arguments of each method's latest call. */
  lastArgs: Partial<Record<StoreMethod, unknown[]>>;
  /** The store behind the switchboard, reachable whatever the switches say. */
  inner: Store;
}

/** The error a failing method rejects with: what a client library says when its server is gone. */
export class BackendDown extends Error {
  constructor(method: string) {
    super(`connect ECONNREFUSED 127.0.0.1:1 (${method})`);
    this.name = "BackendDown";
  }
}

/**
 * A store over `inner` (a fresh MemoryStore by default) whose methods obey `control`.
 * @example
 * const { store, control } = controlledStore();
 * control.failing = new Set(["appendEvents"]);
 */
export function controlledStore(inner: Store = new MemoryStore()): { store: Store; control: StoreControl } {
  let waiting: (() => void)[] = [];
  const control: StoreControl = {
    failing: new Set(),
    delayMs: {},
    held: new Set(),
    release() {
      control.held.clear();
      for (const resume of waiting) resume();
      waiting = [];
    },
    calls: {},
    lastArgs: {},
    inner,
  };
  const fails = (method: StoreMethod): boolean => control.failing === "all" || control.failing.has(method);
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const method = property as StoreMethod;
      if (property === "close") return (value as () => Promise<void>).bind(target);
      return async (...args: unknown[]) => {
        control.calls[method] = (control.calls[method] ?? 0) + 1;
        control.lastArgs[method] = args;
        if (control.held.has(method)) await new Promise<void>((resume) => waiting.push(resume));
        const delay = control.delayMs[method];
        if (delay !== undefined) await new Promise((resolve) => setTimeout(resolve, delay));
        // Judged when the call reaches the backend: a held call may find it gone by then.
        if (fails(method)) throw new BackendDown(method);
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
  return { store, control };
}

/** A store wrapper for tests that count, refuse or alter calls: one place for the Proxy plumbing. */
import type { Store } from "../../src/store.ts";

/**
 * `inner` with every method call passed through `around(method, args, call)`, where `call()`
 * makes the call on `inner` with `args` and returns its result.
 * @example
 * const calls = new Map<string, number>();
 * const store = interceptStore(new MemoryStore(), (method, _args, call) => {
 *   calls.set(method, (calls.get(method) ?? 0) + 1);
 *   return call();
 * });
 */
export function interceptStore(
  inner: Store,
  around: (method: string, args: unknown[], call: () => unknown) => unknown,
): Store {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const method = String(property);
      return (...args: unknown[]) =>
        around(method, args, () => (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

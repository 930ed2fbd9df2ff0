import { afterEach, describe, expect, it, vi } from "vitest";
import { ListenerSet } from "./listener-set.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("ListenerSet", () => {
  it("calls the listeners of a key with the change, and only those", () => {
    const listeners = new ListenerSet("store-test");
    const a = vi.fn();
    const b = vi.fn();
    listeners.add("run-1", a);
    listeners.add("run-2", b);
    listeners.notify("run-1", "record", 3);
    expect(a).toHaveBeenCalledWith("record", 3);
    expect(b).not.toHaveBeenCalled();
  });

  it("counts one function added twice as two subscriptions, removed one at a time", () => {
    const listeners = new ListenerSet("store-test");
    const listener = vi.fn();
    const removeFirst = listeners.add("run", listener);
    listeners.add("run", listener);
    listeners.notify("run", "events");
    expect(listener).toHaveBeenCalledTimes(2);
    removeFirst();
    removeFirst();
    listeners.notify("run", "events");
    expect(listener).toHaveBeenCalledTimes(3);
    expect(listeners.has("run")).toBe(true);
  });

  it("forgets a key with its last listener", () => {
    const listeners = new ListenerSet("store-test");
    const remove = listeners.add("run", () => undefined);
    remove();
    expect(listeners.has("run")).toBe(false);
    expect(listeners.keys()).toEqual([]);
  });

  it("logs a listener that throws, once per throw, and still calls the others", () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const listeners = new ListenerSet("store-test");
    const failure = new Error("boom");
    const after = vi.fn();
    listeners.add("run", () => {
      throw failure;
    });
    listeners.add("run", after);
    expect(() => listeners.notify("run", "events")).not.toThrow();
    expect(after).toHaveBeenCalledTimes(1);
    expect(logged).toHaveBeenCalledTimes(1);
    expect(logged).toHaveBeenCalledWith(
      expect.stringMatching(/^\[acp\] \[store-test\] a change listener threw/),
      failure,
    );
  });

  it("skips a listener removed by an earlier one of the same notification", () => {
    const listeners = new ListenerSet("store-test");
    const later = vi.fn();
    let removeLater = (): void => undefined;
    listeners.add("run", () => removeLater());
    removeLater = listeners.add("run", later);
    listeners.notify("run", "events");
    expect(later).not.toHaveBeenCalled();
  });

  it("wakes every listener with an unknown change, and none after clear", () => {
    const listeners = new ListenerSet("store-test");
    const a = vi.fn();
    const b = vi.fn();
    listeners.add("run-1", a);
    listeners.add("run-2", b);
    listeners.notifyAll();
    expect(a).toHaveBeenCalledWith(undefined, undefined);
    expect(b).toHaveBeenCalledWith(undefined, undefined);
    listeners.clear();
    listeners.notifyAll();
    expect(a).toHaveBeenCalledTimes(1);
  });
});

import { describe, expect, it } from "vitest";
import { RecencyList } from "../src/recency-list.ts";

describe("RecencyList", () => {
  it("keeps keys oldest first, moving a touched key to the newest end", () => {
    const list = new RecencyList<string>();
    for (const key of ["a", "b", "c"]) list.touch(key);
    list.touch("a");
    list.touch("b");
    expect([...list]).toEqual(["c", "a", "b"]);
    expect(list.oldest()).toBe("c");
    expect(list.size).toBe(3);
  });

  it("deletes from the ends and the middle, and lets the walk delete what it just yielded", () => {
    const list = new RecencyList<number>();
    for (let key = 0; key < 6; key++) list.touch(key);
    list.delete(0);
    list.delete(5);
    list.delete(3);
    list.delete(42);
    expect([...list]).toEqual([1, 2, 4]);
    for (const key of list) list.delete(key);
    expect([...list]).toEqual([]);
    expect(list.oldest()).toBeUndefined();
    list.touch(7);
    expect([...list]).toEqual([7]);
  });

  it("finds the oldest at once however many keys came and went", () => {
    const list = new RecencyList<number>();
    for (let key = 0; key < 50_000; key++) {
      list.touch(key);
      if (key >= 10) list.delete(list.oldest()!);
    }
    expect(list.size).toBe(10);
    expect([...list]).toEqual([49_990, 49_991, 49_992, 49_993, 49_994, 49_995, 49_996, 49_997, 49_998, 49_999]);
  });
});

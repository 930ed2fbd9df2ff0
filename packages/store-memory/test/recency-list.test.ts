import { describe, expect, it } from "vitest";
import { type Linked, RecencyList } from "../src/recency-list.ts";

interface Entry extends Linked<Entry> {
  key: string;
}

const entry = (key: string): Entry => ({ key, older: undefined, newer: undefined, list: undefined });
const keys = (list: RecencyList<Entry>): string[] => [...list].map((node) => node.key);

describe("RecencyList", () => {
  it("keeps entries oldest first, moving a touched entry to the newest end", () => {
    const list = new RecencyList<Entry>();
    const [a, b, c] = [entry("a"), entry("b"), entry("c")];
    for (const node of [a, b, c]) list.touch(node);
    list.touch(a);
    list.touch(b);
    list.touch(b);
    expect(keys(list)).toEqual(["c", "a", "b"]);
    expect(list.oldest()).toBe(c);
    expect(list.size).toBe(3);
  });

  it("deletes from the ends and the middle, ignores entries it does not hold, and lets a walk delete what it just yielded", () => {
    const list = new RecencyList<Entry>();
    const other = new RecencyList<Entry>();
    const nodes = ["0", "1", "2", "3", "4", "5"].map(entry);
    for (const node of nodes) list.touch(node);
    list.delete(nodes[0]!);
    list.delete(nodes[5]!);
    list.delete(nodes[3]!);
    other.delete(nodes[1]!);
    list.delete(entry("stranger"));
    expect(keys(list)).toEqual(["1", "2", "4"]);
    expect(list.size).toBe(3);
    for (const node of list) list.delete(node);
    expect(keys(list)).toEqual([]);
    expect(list.oldest()).toBeUndefined();
    list.touch(nodes[3]!);
    expect(keys(list)).toEqual(["3"]);
  });

  it("moves an entry between lists only once it left the first", () => {
    const active = new RecencyList<Entry>();
    const finished = new RecencyList<Entry>();
    const node = entry("run");
    active.touch(node);
    expect(() => finished.touch(node)).toThrow(/another recency list/);
    active.delete(node);
    finished.touch(node);
    expect([active.size, finished.size]).toEqual([0, 1]);
  });

  it("finds the oldest at once however many entries came and went", () => {
    const list = new RecencyList<Entry>();
    for (let index = 0; index < 50_000; index++) {
      list.touch(entry(String(index)));
      if (index >= 10) list.delete(list.oldest()!);
    }
    expect(list.size).toBe(10);
    expect(keys(list)).toEqual([
      "49990",
      "49991",
      "49992",
      "49993",
      "49994",
      "49995",
      "49996",
      "49997",
      "49998",
      "49999",
    ]);
  });
});

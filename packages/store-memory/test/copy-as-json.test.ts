import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { copyAsJson } from "../src/copy-as-json.ts";

const throughText = (value: unknown): unknown => {
  const text = JSON.stringify(value);
  return text === undefined ? undefined : JSON.parse(text);
};

describe("copyAsJson", () => {
  it("copies any JSON value as the round trip through text does", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(copyAsJson(value)).toStrictEqual(throughText(value));
      }),
      { numRuns: 500 },
    );
  });

  it("copies what JSON changes or leaves out as JSON does", () => {
    const tricky = {
      date: new Date("2026-01-02T03:04:05.006Z"),
      missing: undefined,
      fn: () => 1,
      symbol: Symbol("s"),
      ["__proto__"]: { polluted: true },
      list: [undefined, () => 1, Symbol("s"), NaN, Infinity, -0],
      boxed: [new String("s"), new Number(2), new Boolean(false)],
      nested: { toJSON: (key: string) => `custom for ${key}` },
      inherited: Object.create({ hidden: 1 }, { own: { value: 2, enumerable: true } }),
    };
    expect(copyAsJson(tricky)).toStrictEqual(throughText(tricky));
    expect(copyAsJson(undefined)).toBeUndefined();
  });

  it("shares nothing with the original", () => {
    const original = { run: { output: [{ parts: [{ content: "a" }] }] } };
    const copied = copyAsJson(original);
    copied.run.output[0]!.parts.push({ content: "b" });
    expect(original.run.output[0]!.parts).toHaveLength(1);
  });

  it("throws on a BigInt, as JSON.stringify does", () => {
    expect(() => copyAsJson({ n: 1n })).toThrow(TypeError);
  });

  it("copies an object once among values copied with the same shared map", () => {
    const run = { status: "completed", output: [{ parts: [{ content: "a" }] }] };
    const shared = new Map<object, unknown>();
    const record = copyAsJson({ run }, shared);
    const event = copyAsJson({ type: "run.completed", run }, shared);
    expect(event.run).toBe(record.run);
    expect(record.run).not.toBe(run);
    expect(copyAsJson({ run }).run).not.toBe(record.run);
  });
});

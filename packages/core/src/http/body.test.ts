import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, mayBeUnstorable, unstorable } from "./body.ts";

describe("mayBeUnstorable", () => {
  it("says no for text without NUL or surrogate escapes and shallow enough", () => {
    const text = JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "héllo 😀" }] }] });
    expect(mayBeUnstorable(text, MAX_JSON_DEPTH)).toBe(false);
  });

  it("says maybe for every body the walk refuses", () => {
    for (const value of [{ a: "x\u0000" }, { a: "x\ud800" }, { a: "\udc00" }, { "k\u0000": 1 }]) {
      const text = JSON.stringify(value);
      expect(unstorable(JSON.parse(text), MAX_JSON_DEPTH)).toBeDefined();
      expect(mayBeUnstorable(text, MAX_JSON_DEPTH)).toBe(true);
    }
    const deep = `${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}`;
    expect(unstorable(JSON.parse(deep), MAX_JSON_DEPTH)).toBeDefined();
    expect(mayBeUnstorable(deep, MAX_JSON_DEPTH)).toBe(true);
    // Upper-case hex digits in the escape.
    expect(mayBeUnstorable('{"a":"\\uD83D"}', MAX_JSON_DEPTH)).toBe(true);
  });

  it("may say maybe for a storable body, which the walk then accepts", () => {
    const text = '{"a":"\\\\u0000","b":"\\ud83d\\ude00"}';
    expect(mayBeUnstorable(text, MAX_JSON_DEPTH)).toBe(true);
    expect(unstorable(JSON.parse(text), MAX_JSON_DEPTH)).toBeUndefined();
  });
});

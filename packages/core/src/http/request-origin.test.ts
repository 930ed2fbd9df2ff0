import { describe, expect, it } from "vitest";
import { originOf } from "./request-origin.ts";

describe("originOf", () => {
  it("gives the origin of each URL, as new URL() does, whatever came before", () => {
    for (const url of [
      "http://127.0.0.1:8000/runs",
      "http://127.0.0.1:8000/runs/1?x=2",
      "HTTP://Example.COM:80/a",
      "https://example.com:443/b",
      "https://example.com:8443/b",
      "http://user:pw@example.com/c",
      "http://example.com",
      "http://127.0.0.1:8000/runs",
    ]) {
      expect(originOf(url), url).toBe(new URL(url).origin);
    }
  });
});

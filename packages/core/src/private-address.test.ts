import { describe, expect, it } from "vitest";
import { isInternalAddress } from "./private-address.ts";

describe("isInternalAddress", () => {
  it("flags loopback, link-local, private, unspecified and IPv4-mapped forms of them", () => {
    for (const address of [
      "127.0.0.1",
      "127.255.0.9",
      "::1",
      "0.0.0.0",
      "::",
      "169.254.169.254",
      "fe80::1",
      "fe80::1%eth0",
      "10.0.0.1",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.10",
      "100.64.0.1",
      "fc00::1",
      "fd12:3456::1",
      "::ffff:127.0.0.1",
      "::ffff:a9fe:a9fe",
      "::ffff:10.0.0.1",
      "::127.0.0.1",
      "[::1]",
      "224.0.0.1",
      "255.255.255.255",
      "64:ff9b::7f00:1",
      "64:ff9b::10.0.0.1",
      "64:ff9b::a9fe:a9fe",
      "64:ff9b:1::1",
      "2002:7f00:1::",
      "2002:c0a8:0101::1",
      "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ]) {
      expect(isInternalAddress(address), address).toBe(true);
    }
  });

  it("lets public addresses through", () => {
    for (const address of [
      "8.8.8.8",
      "1.1.1.1",
      "172.32.0.1",
      "192.169.0.1",
      "2606:4700:4700::1111",
      "::ffff:8.8.8.8",
      "64:ff9b::8.8.8.8",
      "2002:0808:0808::1",
    ]) {
      expect(isInternalAddress(address), address).toBe(false);
    }
  });

  it("treats anything that is not an IP address as internal", () => {
    expect(isInternalAddress("localhost")).toBe(true);
    expect(isInternalAddress("")).toBe(true);
  });
});

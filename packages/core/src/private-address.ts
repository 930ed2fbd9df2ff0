/**
 * Which IP addresses lead inside the network the server runs in: loopback, link-local, private,
 * shared (CGNAT), unspecified, multicast and reserved ranges, in IPv4, IPv6 and the IPv6 forms that
 * embed an IPv4 address. Fetching such an address on a client's behalf would let the client
 * reach services that are not meant to be public (SSRF).
 */
import { BlockList, isIP } from "node:net";

const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // "this network", includes the unspecified 0.0.0.0
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // shared address space (carrier-grade NAT)
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata services live here
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, includes broadcast
] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 96], // unspecified, loopback and the deprecated IPv4-compatible forms
  ["fc00::", 7], // unique local (private)
  ["fe80::", 10], // link-local
  ["fec0::", 10], // deprecated site-local
  ["ff00::", 8], // multicast
] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv6");
}

/**
 * True when `address` (an IPv4 or IPv6 literal) is internal. IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`) are judged by their IPv4 address. Anything that is not an IP is internal:
 * refusing is the safe answer.
 */
export function isInternalAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(bare);
  if (family === 0) return true;
  return INTERNAL.check(bare, family === 4 ? "ipv4" : "ipv6");
}

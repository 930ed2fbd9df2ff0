/**
 * Which IP addresses lead inside the network the server runs in: loopback, link-local, private,
 * shared (CGNAT), unspecified, multicast and reserved ranges, in IPv4, IPv6 and the IPv6 forms that
 * embed an IPv4 address (IPv4-mapped, NAT64, 6to4). Fetching such an address on a client's behalf
 * would let the client reach services that are not meant to be public (SSRF).
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
  ["64:ff9b:1::", 48], // NAT64 for local use: a translator inside the network
  ["2001::", 32], // Teredo: the IPv4 address inside is obfuscated, so none is let through
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
  if (family === 4) return INTERNAL.check(bare, "ipv4");
  if (INTERNAL.check(bare, "ipv6")) return true;
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry: judge that one.
  const embedded = embeddedIpv4(hextets(bare));
  return embedded !== undefined && INTERNAL.check(embedded, "ipv4");
}

/** The eight 16-bit groups of a valid IPv6 address, a trailing dotted IPv4 part included. */
function hextets(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const parse = (part: string | undefined): number[] =>
    part ? part.split(":").map((group) => parseInt(group, 16)) : [];
  const front = parse(head);
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function embeddedIpv4(groups: number[]): string | undefined {
  const quad = (high: number, low: number): string => [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((group) => group === 0))
    return quad(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return quad(groups[1]!, groups[2]!);
  return undefined;
}

/**
 * The origin of a request's URL, without parsing the URL for every request: a server sees the
 * same `scheme://authority` on almost every request, so the last one parsed is kept.
 */

let lastPrefix: string | undefined;
let lastOrigin = "";

/**
 * `new URL(url).origin`, parsed again only when the part of `url` before its path differs from
 * the last call's. That part holds the whole authority, so equal parts have equal origins.
 */
export function originOf(url: string): string {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  const prefix = slash === -1 ? url : url.slice(0, slash);
  if (prefix !== lastPrefix) {
    lastOrigin = new URL(url).origin;
    lastPrefix = prefix;
  }
  return lastOrigin;
}

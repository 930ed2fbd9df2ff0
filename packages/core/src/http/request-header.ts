/**
 * Reading request headers cheaply. On `@hono/node-server`, `c.req.header()` first builds a WHATWG
 * `Headers` object of every header of the request (validating each), which costs more than
 * handling a small request does; Node has parsed the headers already.
 */
import type { IncomingMessage } from "node:http";
import type { Context } from "hono";

/** A request header by its lower-case name, from Node's parsed headers when served by Node. */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  // Other runtimes, and `app.request()` in tests, have no Node request: ask Hono.
  if (incoming?.headers === undefined) return c.req.header(name);
  const value = incoming.headers[name];
  // Node keeps repeated headers of a few kinds (set-cookie) as arrays; fetch joins them.
  return Array.isArray(value) ? value.join(", ") : value;
}

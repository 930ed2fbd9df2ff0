/**
 * Checks any answer of the server against the ACP spec: never a 5xx, an ACP `Error` body for every
 * 4xx, and for a success the OpenAPI component of its route (each SSE event an `Event`). Throws a
 * readable error otherwise, so a property-based test can report and shrink the request that caused it.
 */
import { assertMatchesSchema } from "../../../../packages/core/test/support/openapi.ts";

/** The OpenAPI component a successful answer to `method path` must match; `undefined` for routes without one. */
export function successComponent(method: string, pathname: string): string | undefined {
  const segments = pathname.split("/").slice(1);
  const [first, second, third] = segments;
  if (method === "GET" && pathname === "/ping") return "ping";
  if (method === "GET" && pathname === "/agents") return "AgentsListResponse";
  if (method === "GET" && first === "agents" && segments.length === 2) return "AgentManifest";
  if (method === "POST" && pathname === "/runs") return "Run";
  if (first === "runs" && segments.length === 2 && second) return "Run";
  if (method === "POST" && first === "runs" && third === "cancel" && segments.length === 3) return "Run";
  if (method === "GET" && first === "runs" && third === "events" && segments.length === 3)
    return "RunEventsListResponse";
  if (method === "GET" && (first === "sessions" || first === "session") && segments.length === 2) return "Session";
  if (method === "GET" && first === "resources" && segments.length === 2) return "Message";
  return undefined;
}

/**
 * The routes that serve a page or its files rather than ACP JSON: the demo's playground (`/`,
 * `/playground/<file>`) and core's API reference (`/docs`, `/docs/<file>`).
 */
const PAGE_ROUTE = /^\/(?:$|playground\/[\w-]+\.(?:js|css)$|docs(?:\/[^/]*)?$)/;
const PAGE_TYPE = /^(?:text\/html|text\/css|text\/javascript|application\/javascript|image\/)/;

/** Reads the whole answer (to the end of an SSE stream) and throws unless it is a valid ACP answer. */
export async function expectAcpAnswer(method: string, url: string, response: Response): Promise<void> {
  const where = `${method} ${url} -> ${response.status}`;
  const type = response.headers.get("content-type") ?? "";
  const text = await response.text();
  if (response.status >= 500) throw new Error(`${where}: a 5xx answer: ${text.slice(0, 500)}`);
  if (type.startsWith("text/event-stream")) {
    if (response.status !== 200) throw new Error(`${where}: an event stream with a status other than 200`);
    for (const event of sseEvents(text)) assertMatchesSchema("Event", event);
    return;
  }
  if (response.status < 400 && (method === "GET" || method === "HEAD") && PAGE_ROUTE.test(new URL(url).pathname)) {
    if (!PAGE_TYPE.test(type)) throw new Error(`${where}: a page answered ${type || "no content type"}`);
    return;
  }
  if (!type.includes("application/json"))
    throw new Error(`${where}: answered ${type || "no content type"}, not JSON: ${text.slice(0, 200)}`);
  const body: unknown = JSON.parse(text);
  if (response.status >= 400) return assertMatchesSchema("Error", body);
  const component = successComponent(method, new URL(url).pathname);
  if (component === undefined) throw new Error(`${where}: a success on a route that has none`);
  if (component === "ping") {
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new Error(`${where}: /ping answered ${text}`);
    return;
  }
  assertMatchesSchema(component, body);
}

/** The `data:` payloads of an event stream, parsed. */
function sseEvents(text: string): unknown[] {
  return text
    .split("\n\n")
    .map((frame) =>
      frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n"),
    )
    .filter((data) => data !== "")
    .map((data) => JSON.parse(data) as unknown);
}

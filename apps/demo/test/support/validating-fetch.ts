/**
 * A fetch for the acp-sdk client that checks every response body, and every SSE event, against
 * the OpenAPI component schemas of the ACP spec. Problems are collected, not thrown, so that the
 * test that caused them fails with a readable list (see `takeProblems`).
 */
import { assertMatchesSchema } from "../../../../packages/core/test/support/openapi.ts";
import { SseFrames } from "./sse-frames.ts";

const problems: string[] = [];

/** The problems found since the last call, then forgets them. */
export function takeProblems(): string[] {
  return problems.splice(0, problems.length);
}

/** The OpenAPI component an answer to `path` with `status` must match (the path alone decides, for every method). */
function componentFor(path: string, status: number): string | undefined {
  if (status >= 400) return "Error";
  if (path === "/ping") return undefined;
  if (path === "/agents") return "AgentsListResponse";
  if (/^\/agents\/[^/]+$/.test(path)) return "AgentManifest";
  if (/^\/runs\/[^/]+\/events$/.test(path)) return "RunEventsListResponse";
  if (path === "/runs" || /^\/runs\/[^/]+(\/cancel)?$/.test(path)) return "Run";
  if (/^\/sessions?\/[^/]+$/.test(path)) return "Session";
  if (/^\/resources\/[^/]+$/.test(path)) return "Message";
  return undefined;
}

function check(component: string, value: unknown, where: string): void {
  try {
    assertMatchesSchema(component, value);
  } catch (error) {
    problems.push(`${where}: ${(error as Error).message}`);
  }
}

/** Reads SSE frames from a copy of the body and checks each: `id:` present on run events, data an Event. */
async function checkEventStream(body: ReadableStream<Uint8Array>, where: string): Promise<void> {
  const splitter = new SseFrames();
  const reader = body.getReader();
  try {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      for (const frame of splitter.push(chunk.value)) {
        const data = frame
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data === "") continue;
        const event = JSON.parse(data) as { type: string };
        check("Event", event, `${where} event ${event.type}`);
        if (event.type !== "error" && !/^id: \d+$/m.test(frame))
          problems.push(`${where}: event ${event.type} has no numeric id`);
      }
    }
  } catch {
    // The client aborted its stream: nothing more to check.
  }
}

export const validatingFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  const method = init?.method ?? "GET";
  const where = `${method} ${url.pathname} -> ${response.status}`;
  const type = response.headers.get("content-type") ?? "";
  const component = componentFor(url.pathname, response.status);
  if (type.startsWith("text/event-stream") && response.body) {
    const [mine, theirs] = response.body.tee();
    void checkEventStream(mine, where);
    return new Response(theirs, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }
  if (component && type.includes("application/json")) {
    const copy = response.clone();
    check(component, await copy.json(), where);
  } else if (response.status >= 400) {
    problems.push(`${where}: error without a JSON body`);
  }
  return response;
};

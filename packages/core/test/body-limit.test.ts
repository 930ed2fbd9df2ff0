/**
 * The request body limit (`createApp({ maxBodyBytes })`) through `app.request()`: a body over it
 * gets 413 with an ACP error body, whether its size is announced (Content-Length) or not (a
 * chunked stream), and a chunked one is not read whole. What only a socket shows (the connection
 * closed after the answer, bytes read off the wire, pipelining) is tested in apps/demo/test/body-limit.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { AppOptions } from "../src/index.ts";
import { echo } from "./support/agents.ts";
import { startApp, stopApps, type TestApp } from "./support/app.ts";
import { assertMatchesSchema } from "./support/openapi.ts";

afterEach(async () => {
  await stopApps(500);
});

function serveApp(options: Omit<AppOptions, "store">): Promise<TestApp> {
  return startApp([echo], options);
}

/** An echo run request padded with spaces to exactly `bytes` bytes: valid JSON of a chosen size. */
function echoBodyOf(bytes: number): string {
  const body = JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "hi" }] }] });
  return body + " ".repeat(bytes - Buffer.byteLength(body));
}

/** POSTs a run as a client does over HTTP: a string with its Content-Length, a stream chunked. */
function postRun(served: TestApp, body: string | ReadableStream<Uint8Array>): Promise<Response> {
  const size: Record<string, string> =
    typeof body === "string"
      ? { "content-length": String(Buffer.byteLength(body)) }
      : { "transfer-encoding": "chunked" };
  return served.request("/runs", {
    method: "POST",
    headers: { "content-type": "application/json", ...size },
    body,
    duplex: "half",
  } as RequestInit);
}

async function expectTooLarge(response: Response, limit: number): Promise<void> {
  expect(response.status).toBe(413);
  const body = (await response.json()) as { code: string; message: string };
  assertMatchesSchema("Error", body);
  expect(body).toEqual({ code: "invalid_input", message: `The request body is larger than ${limit} bytes` });
}

describe("the request body limit", () => {
  it("answers 413 with an ACP error to a body one byte over a configured limit, and takes one at the limit", async () => {
    const served = await serveApp({ maxBodyBytes: 1024 });
    const over = await postRun(served, echoBodyOf(1025));
    // The rest of that body is never read, so the connection must not be reused.
    expect(over.headers.get("connection")).toBe("close");
    await expectTooLarge(over, 1024);
    const atLimit = await postRun(served, echoBodyOf(1024));
    expect(atLimit.status).toBe(200);
    expect(((await atLimit.json()) as { status: string }).status).toBe("completed");
  });

  it("answers 413 to a chunked body over the limit after reading about the limit of it", async () => {
    const limit = 1024;
    const served = await serveApp({ maxBodyBytes: limit });
    const chunk = new Uint8Array(512).fill(0x20);
    const chunks = 4096; // 2 MiB in all, if the app read it whole
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (pulled === chunks) return controller.close();
          pulled += 1;
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    const response = await postRun(served, body);
    expect(response.headers.get("connection")).toBe("close");
    await expectTooLarge(response, limit);
    expect(pulled * chunk.length).toBeLessThan(8 * limit);
  });

  it("takes a chunked body under the limit", async () => {
    const served = await serveApp({ maxBodyBytes: 1024 });
    const bytes = new TextEncoder().encode(echoBodyOf(1000));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 500));
        controller.enqueue(bytes.slice(500));
        controller.close();
      },
    });
    const response = await postRun(served, body);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { status: string }).status).toBe("completed");
  });

  it("defaults to 4 MiB", async () => {
    const served = await serveApp({});
    const limit = 4 * 1024 * 1024;
    await expectTooLarge(await postRun(served, echoBodyOf(limit + 1)), limit);
    const atLimit = await postRun(served, echoBodyOf(limit));
    expect(atLimit.status).toBe(200);
  });
});

/**
 * The request body limit (`createApp({ maxBodyBytes })`) on a real socket: what `app.request()`
 * cannot show (packages/core/test/body-limit.test.ts has the rest). A slow chunked body over the
 * limit is cut off and its connection closed, so the server reads a sliver of it; a body refused
 * before it was read is read to its end, so the connection serves the next request.
 */
import { once } from "node:events";
import { type AddressInfo, connect, type Socket } from "node:net";
import { type AppOptions, createApp } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { type ServerType, serve } from "@hono/node-server";
import { afterEach, describe, expect, it } from "vitest";
import { assertMatchesSchema } from "../../../packages/core/test/support/openapi.ts";
import { demoAgents } from "../src/agents.ts";

interface Served {
  url: string;
  /** Resolves with the bytes the server read from each connection, once that connection closes. */
  connectionsClosed: Promise<number>[];
  stop(): Promise<void>;
}

const running: Served[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((served) => served.stop()));
});

/** A demo app on a free loopback port, built here because `startServer` takes no body limit. */
async function serveApp(options: Omit<AppOptions, "store">): Promise<Served> {
  const store = new MemoryStore();
  const app = createApp(demoAgents, { store, ...options });
  await app.runtime.start();
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(started));
  });
  const connectionsClosed: Promise<number>[] = [];
  server.on("connection", (socket: Socket) => {
    connectionsClosed.push(new Promise((resolve) => socket.once("close", () => resolve(socket.bytesRead))));
  });
  const served: Served = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connectionsClosed,
    async stop() {
      await app.shutdown({ deadlineMs: 500 });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections(): void }).closeAllConnections();
      });
      await store.close?.();
    },
  };
  running.push(served);
  return served;
}

/** An echo run request padded with spaces to exactly `bytes` bytes: valid JSON of a chosen size. */
function echoBodyOf(bytes: number): string {
  const body = JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "hi" }] }] });
  return body + " ".repeat(bytes - Buffer.byteLength(body));
}

function postRun(url: string, body: BodyInit, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}/runs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal: AbortSignal.timeout(15_000),
    ...init,
  });
}

async function expectTooLarge(response: Response, limit: number): Promise<void> {
  expect(response.status).toBe(413);
  const body = (await response.json()) as { code: string; message: string };
  assertMatchesSchema("Error", body);
  expect(body).toEqual({ code: "invalid_input", message: `The request body is larger than ${limit} bytes` });
}

describe("the request body limit", () => {
  it("cuts off a slow chunked body over the limit and stops reading it", async () => {
    const limit = 1024;
    const served = await serveApp({ maxBodyBytes: limit });
    const chunk = new Uint8Array(16 * 1024).fill(0x20);
    const chunks = 4096; // 64 MiB in all, if the server read it whole
    let sent = 0;
    let stopped = false;
    // No Content-Length: the server learns the size only by reading. Each chunk waits a moment, like a slow upload.
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          if (stopped || sent === chunks) return controller.close();
          sent += 1;
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    const response = await postRun(served.url, body, { duplex: "half" } as RequestInit);
    const sentWhenAnswered = sent;
    await expectTooLarge(response, limit);
    expect(sentWhenAnswered).toBeLessThan(chunks);
    // The server closes the connection instead of draining the rest: it read a sliver of the 64 MiB.
    const bytesRead = await served.connectionsClosed[0]!;
    stopped = true;
    expect(bytesRead).toBeLessThan(1024 * 1024);
    expect(sent).toBeLessThan(chunks);
  });

  it("reads the rest of a body refused before it was read, so its connection serves the next request", async () => {
    const served = await serveApp({});
    const { port } = new URL(served.url);
    // Refused on its Content-Type before the body is read; a megabyte outlasts the socket buffers.
    // A /ping follows on the same connection, pipelined: the server must get past the body to answer it.
    const body = echoBodyOf(1024 * 1024);
    const socket = connect(Number(port), "127.0.0.1");
    await once(socket, "connect");
    socket.write(
      `POST /runs HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
    socket.write("GET /ping HTTP/1.1\r\nHost: test\r\n\r\n");
    let received = "";
    const statuses = (): number[] => [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
    await new Promise<void>((resolve, reject) => {
      socket.on("data", (data: Buffer) => {
        received += data.toString("utf8");
        if (statuses().length === 2 && received.endsWith("{}")) resolve();
      });
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    socket.destroy();
    expect(statuses()).toEqual([415, 200]);
    expect(received).toContain("Content-Type must be application/json");
  });
});

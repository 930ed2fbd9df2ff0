import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHistoryFetcher, describeUrl, HistoryFetchError } from "./history-fetch.ts";

const MESSAGE = { role: "user", parts: [{ content_type: "text/plain", content: "from the peer" }] };

let server: Server;
let origin = "";
const hits = new Map<string, number>();

beforeAll(async () => {
  server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === "/message")
      return void response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(MESSAGE));
    if (path === "/big-declared")
      return void response.writeHead(200, { "content-length": "4096" }).end("x".repeat(4096));
    if (path === "/big-chunked") {
      response.writeHead(200, { "content-type": "application/json" });
      for (let i = 0; i < 8; i++) response.write("x".repeat(512));
      return void response.end();
    }
    if (path === "/redirect") return void response.writeHead(302, { location: "/message" }).end();
    if (path === "/not-a-message") return void response.writeHead(200).end(JSON.stringify({ hello: "world" }));
    if (path === "/not-json") return void response.writeHead(200).end("<html>");
    if (path === "/slow") return; // never answers
    response.writeHead(404).end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HistoryFetchError);
    return (error as Error).message;
  }
  throw new Error("expected the fetch to be refused");
}

describe("createHistoryFetcher", () => {
  it("loads nothing by default: no origin is allowed, and the server gets no request", async () => {
    const before = hits.get("/message") ?? 0;
    expect(await refusal(createHistoryFetcher()(`${origin}/message`))).toContain("not in history.allowedOrigins");
    expect(hits.get("/message") ?? 0).toBe(before);
  });

  it("refuses a loopback host even when its origin is allowed, before connecting", async () => {
    const before = hits.get("/message") ?? 0;
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin] });
    expect(await refusal(fetchItem(`${origin}/message`))).toContain("loopback, link-local or private");
    expect(hits.get("/message") ?? 0).toBe(before);
  });

  it("refuses a name that resolves to loopback", async () => {
    const port = new URL(origin).port;
    const fetchItem = createHistoryFetcher({ allowedOrigins: [`http://localhost:${port}`] });
    expect(await refusal(fetchItem(`http://localhost:${port}/message`))).toContain("loopback, link-local or private");
  });

  it("loads a message from an allowed origin when private networks are allowed", async () => {
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin], allowPrivateNetworks: true });
    expect(await fetchItem(`${origin}/message`)).toMatchObject({ role: "user", parts: [{ content: "from the peer" }] });
  });

  it("connects to the addresses it checked when a name is allowed (localhost with private networks allowed)", async () => {
    const port = new URL(origin).port;
    const fetchItem = createHistoryFetcher({
      allowedOrigins: [`http://localhost:${port}`],
      allowPrivateNetworks: true,
    });
    expect(await fetchItem(`http://localhost:${port}/message`)).toMatchObject({
      parts: [{ content: "from the peer" }],
    });
  });

  it("refuses a body over maxBytes, declared or streamed", async () => {
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin], allowPrivateNetworks: true, maxBytes: 1024 });
    expect(await refusal(fetchItem(`${origin}/big-declared`))).toContain("larger than 1024 bytes");
    expect(await refusal(fetchItem(`${origin}/big-chunked`))).toContain("larger than 1024 bytes");
  });

  it("gives up on a server that does not answer within timeoutMs", async () => {
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin], allowPrivateNetworks: true, timeoutMs: 200 });
    expect(await refusal(fetchItem(`${origin}/slow`))).toContain("did not answer within 200 ms");
  });

  it("does not follow a redirect", async () => {
    const before = hits.get("/message") ?? 0;
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin], allowPrivateNetworks: true });
    expect(await refusal(fetchItem(`${origin}/redirect`))).toContain("redirect (302)");
    expect(hits.get("/message") ?? 0).toBe(before);
  });

  it("refuses a body that is not an ACP message, and an error status", async () => {
    const fetchItem = createHistoryFetcher({ allowedOrigins: [origin], allowPrivateNetworks: true });
    expect(await refusal(fetchItem(`${origin}/not-a-message`))).toContain("not an ACP message");
    expect(await refusal(fetchItem(`${origin}/not-json`))).toContain("not JSON");
    expect(await refusal(fetchItem(`${origin}/missing`))).toContain("HTTP 404");
  });

  it("keeps credentials and query strings out of what it reports", async () => {
    const port = new URL(origin).port;
    const url = `http://alice:pa55word@127.0.0.1:${port}/message?token=t0ken`;
    const message = await refusal(createHistoryFetcher()(url));
    expect(message).not.toMatch(/pa55word|t0ken/);
    expect(describeUrl(url)).toBe(`${origin}/message`);
  });

  it("throws when the app is built with a wrong option", () => {
    expect(() => createHistoryFetcher({ allowedOrigins: ["https://peer.example.com/"] })).toThrow(/is not an origin/);
    expect(() => createHistoryFetcher({ allowedOrigins: ["ftp://peer.example.com"] })).toThrow(/is not an origin/);
    expect(() => createHistoryFetcher({ timeoutMs: 0 })).toThrow(/history.timeoutMs/);
    expect(() => createHistoryFetcher({ maxBytes: -1 })).toThrow(/history.maxBytes/);
  });
});

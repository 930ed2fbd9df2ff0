/**
 * SSE streams served by Node: once a stream has caught up, core writes its chunks to Node's
 * response itself instead of through the web stream (packages/core/src/http/sse.ts). Over real
 * HTTP: a client that stops reading while a long run streams gets every event once and in order
 * when it reads again (Node's back-pressure, `drain`), an idle stream still gets its keep-alive
 * comments, and a client that leaves gives its stream's place back. Mounted in an app whose
 * middleware puts another body around the stream, every byte goes through that body.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoAgents } from "../src/agents.ts";
import { type DemoServer, startServer } from "../src/server.ts";
import { frameData, frameId, SseFrames } from "./support/sse-frames.ts";
import { pollUntil } from "./support/until.ts";

let demo: DemoServer;
const KEEP_ALIVE_MS = 100;

beforeAll(async () => {
  const store = new MemoryStore();
  demo = await startServer(
    demoAgents,
    { store, description: "memory", close: async () => store.close?.() },
    {
      port: 0,
      host: "127.0.0.1",
      drainMs: 1000,
      playground: false,
      app: { sseKeepAliveMs: KEEP_ALIVE_MS, limits: { maxStreams: 2 } },
    },
  );
});

afterAll(async () => {
  await demo?.stop();
});

/** An SSE request over node:http, its frames collected as they come; `pause()` stops reading. */
function openStream(path: string, body?: unknown, base = demo.url) {
  const frames: string[] = [];
  const parser = new SseFrames();
  let response: http.IncomingMessage | undefined;
  let ended = false;
  const request = http.request(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { accept: "text/event-stream", "content-type": "application/json" },
  });
  const opened = new Promise<void>((resolve, reject) => {
    request.once("error", reject);
    request.once("response", (answer) => {
      response = answer;
      answer.on("data", (chunk: Buffer) => frames.push(...parser.push(chunk)));
      answer.once("end", () => {
        ended = true;
      });
      resolve();
    });
  });
  request.end(body === undefined ? undefined : JSON.stringify(body));
  return {
    frames,
    opened,
    ended: () => ended,
    pause: () => response?.pause(),
    resume: () => response?.resume(),
    close: () => request.destroy(),
  };
}

/** Waits for `check` to hold (or give a value), failing with `what` after `ms`. */
const until = <T>(check: () => T | Promise<T>, what: string, ms = 10_000): Promise<NonNullable<T>> =>
  pollUntil(what, async () => (await check()) || undefined, ms, 10) as Promise<NonNullable<T>>;

const events = (frames: string[]) =>
  frames.flatMap((frame) => {
    const data = frameData(frame);
    return data === undefined ? [] : [{ id: frameId(frame), event: JSON.parse(data) as { type: string } }];
  });

describe("SSE streams written to Node's response", () => {
  it("gives a client that stops reading during a long run every event once, in order, when it reads again", async () => {
    const stream = openStream("/runs", {
      agent_name: "tokens",
      input: [{ role: "user", parts: [{ content: "40000 token" }] }],
      mode: "stream",
    });
    await stream.opened;
    await until(() => stream.frames.length > 10, "the first events");
    // The run goes on while nothing is read: the socket's buffers fill and the server must wait.
    stream.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    stream.resume();
    await until(stream.ended, "the end of the stream", 60_000);
    const received = events(stream.frames);
    expect(received.map((item) => item.id)).toEqual(received.map((_, index) => index + 1));
    expect(received.filter((item) => item.event.type === "message.part")).toHaveLength(40_000);
    expect(received.at(-1)?.event.type).toBe("run.completed");
  });

  it("sends keep-alive comments to a stream that has caught up and waits", async () => {
    const created = await fetch(`${demo.url}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "approval", input: [{ role: "user", parts: [{ content: "ok?" }] }] }),
    });
    const run = (await created.json()) as { run_id: string; status: string };
    expect(run.status).toBe("awaiting");
    const stream = openStream(`/runs/${run.run_id}/events`);
    await stream.opened;
    await until(() => events(stream.frames).some((item) => item.event.type === "run.awaiting"), "the run's log");
    const seen = stream.frames.length;
    await until(
      () => stream.frames.slice(seen).some((frame) => frame.startsWith(": keep-alive")),
      "a keep-alive comment",
    );
    stream.close();
  });

  it("gives a stream's place back when its client leaves", async () => {
    const approval = (text: string) =>
      fetch(`${demo.url}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ agent_name: "approval", input: [{ role: "user", parts: [{ content: text }] }] }),
      }).then((answer) => answer.json() as Promise<{ run_id: string }>);
    const runs = await Promise.all(["a", "b", "c"].map(approval));
    // maxStreams is 2: two streams that caught up, then one leaves, and a third one gets its place.
    const first = openStream(`/runs/${runs[0]!.run_id}/events`);
    const second = openStream(`/runs/${runs[1]!.run_id}/events`);
    for (const stream of [first, second]) {
      await stream.opened;
      await until(() => events(stream.frames).some((item) => item.event.type === "run.awaiting"), "the run's log");
    }
    const refused = await fetch(`${demo.url}/runs/${runs[2]!.run_id}/events`, {
      headers: { accept: "text/event-stream" },
    });
    expect(refused.status).toBe(503);
    await refused.body?.cancel();
    first.close();
    const third = await until(async () => {
      const answer = await fetch(`${demo.url}/runs/${runs[2]!.run_id}/events`, {
        headers: { accept: "text/event-stream" },
      });
      if (answer.status === 200) return answer;
      await answer.body?.cancel();
      return undefined;
    }, "a place for the third stream");
    await third.body?.cancel();
    second.close();
  });

  it("goes through a body that middleware put around the stream, when the app is mounted in another", async () => {
    const store = new MemoryStore();
    const acp = createApp(demoAgents, { store });
    const outer = new Hono();
    let counted = 0;
    // Middleware of the outer app that answers SSE through a stream of its own, counting what passes.
    outer.use("*", async (c, next) => {
      await next();
      const body = c.res.body;
      if (!c.res.headers.get("content-type")?.startsWith("text/event-stream") || body === null) return;
      const counting = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          counted += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      c.res = new Response(body.pipeThrough(counting), c.res);
    });
    outer.route("/", acp);
    const server = serve({ fetch: outer.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((resolve) => server.once("listening", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const stream = openStream(
        "/runs",
        { agent_name: "tokens", input: [{ role: "user", parts: [{ content: "3000 token delay=0" }] }], mode: "stream" },
        base,
      );
      let received = 0;
      await stream.opened;
      await until(stream.ended, "the end of the stream", 30_000);
      for (const frame of stream.frames) received += Buffer.byteLength(`${frame}\n\n`);
      const got = events(stream.frames);
      expect(got.map((item) => item.id)).toEqual(got.map((_, index) => index + 1));
      expect(got.at(-1)?.event.type).toBe("run.completed");
      // Every byte the client got went through the outer app's body.
      expect(counted).toBe(received);
    } finally {
      await acp.shutdown();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("sends the events a stream has at hand when it starts in order, behind authentication", async () => {
    // Authentication runs as middleware: by the time the stream starts, the run's first events
    // are at hand, and the answer is finalized by the middleware chain.
    const acp = createApp(demoAgents, { store: new MemoryStore(), auth: { apiKeys: ["the-key"] } });
    const server = serve({ fetch: acp.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((resolve) => server.once("listening", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const answer = await fetch(`${base}/runs`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer the-key", accept: "text/event-stream" },
          body: JSON.stringify({
            agent_name: "approval",
            input: [{ role: "user", parts: [{ content: "ok?" }] }],
            mode: "stream",
          }),
        });
        expect(answer.status).toBe(200);
        const got = events(new SseFrames().push(new Uint8Array(await answer.arrayBuffer())));
        expect(got.map((item) => item.event.type)).toEqual([
          "run.created",
          "run.in-progress",
          "message.created",
          "message.part",
          "message.completed",
          "run.awaiting",
        ]);
        expect(got.map((item) => item.id)).toEqual([1, 2, 3, 4, 5, 6]);
      }
    } finally {
      await acp.shutdown();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/**
 * The ceiling: a bare Hono endpoint on @hono/node-server that does what every ACP sync run must
 * (read the body, parse it with the same valibot schema as the ACP app, answer a Run-shaped JSON)
 * and nothing else: no store, no runtime, no agent. Run as its own process with `PORT` set.
 * `GET /sse` is the floor of an idle event stream, and `GET /__bench/memory` reports memory as
 * acp-server.ts does.
 */
import { randomUUID } from "node:crypto";
import type { Run } from "@acp/core";
import { RunCreateRequestSchema } from "@acp/core/models";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import * as v from "valibot";
import { keepConnectionsOpen } from "./keep-alive.ts";

const app = new Hono();
app.get("/ping", (c) => c.json({}));
app.post("/runs", async (c) => {
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text());
  } catch {
    return c.json({ code: "invalid_input", message: "The request body is not valid JSON" }, 400);
  }
  const parsed = v.safeParse(RunCreateRequestSchema, body);
  if (!parsed.success) return c.json({ code: "invalid_input", message: parsed.issues[0].message }, 422);
  const request = parsed.output;
  const createdAt = new Date().toISOString();
  const run: Run = {
    agent_name: request.agent_name,
    session_id: request.session_id ?? randomUUID(),
    run_id: randomUUID(),
    status: "completed",
    await_request: null,
    output: request.input.map((message) => ({
      ...message,
      role: `agent/${request.agent_name}`,
      created_at: createdAt,
      completed_at: createdAt,
    })),
    error: null,
    created_at: createdAt,
    finished_at: new Date().toISOString(),
  };
  c.header("Run-ID", run.run_id);
  return c.json(run);
});

/** The floor of an idle event stream: Hono's streamSSE, one event, then nothing until the client leaves. */
app.get("/sse", (c) =>
  streamSSE(c, async (stream) => {
    await stream.writeSSE({ id: "1", data: JSON.stringify({ type: "run.awaiting" }) });
    await new Promise<void>((resolve) => stream.onAbort(resolve));
  }),
);

const collectGarbage = (globalThis as { gc?: () => void }).gc;
/** The same report as acp-server.ts gives, without a store. */
app.get("/__bench/memory", (c) => {
  collectGarbage?.();
  collectGarbage?.();
  return c.json({ memory: process.memoryUsage(), storeCalls: {}, gc: collectGarbage !== undefined });
});

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: "127.0.0.1" });
keepConnectionsOpen(server);
const stop = (): void => {
  server.close(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

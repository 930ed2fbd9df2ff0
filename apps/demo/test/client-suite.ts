/**
 * What a user of the official `acp-sdk` client does, against a server given by its base URL:
 * one instance, or several behind a load balancer. Every response and SSE event is checked
 * against the OpenAPI schemas on the way (validating-fetch.ts).
 */
import { Client } from "acp-sdk";
import { afterEach, describe, expect, it } from "vitest";
import { takeProblems, validatingFetch } from "./support/validating-fetch.ts";

type Event = Awaited<ReturnType<Client["runEvents"]>>[number];
type Run = Awaited<ReturnType<Client["runStatus"]>>;

const TERMINAL = ["completed", "failed", "cancelled"];

export function client(baseUrl: string): Client {
  return new Client({ baseUrl, fetch: validatingFetch });
}

/** Polls the run until `done` holds; gives up after `ms` with the last status in the message. */
export async function pollRun(c: Client, runId: string, done: (run: Run) => boolean, ms = 10_000): Promise<Run> {
  const until = Date.now() + ms;
  for (;;) {
    const run = await c.runStatus(runId);
    if (done(run)) return run;
    if (Date.now() > until) throw new Error(`run ${runId} still ${run.status} after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function collect(events: AsyncIterable<Event>): Promise<Event[]> {
  const all: Event[] = [];
  for await (const event of events) all.push(event);
  return all;
}

function texts(run: Run): string {
  return run.output.flatMap((message) => message.parts.map((part) => part.content ?? "")).join("");
}

const types = (events: Event[]): string[] => events.map((event) => event.type);

/**
 * The events exactly as the server sent them: the client fills absent timestamps with the time
 * it parsed them, so comparing what it returns would compare parse times.
 */
export async function rawStream(baseUrl: string, path: string, body: unknown): Promise<unknown[]> {
  const response = await validatingFetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return text
    .split("\n\n")
    .map((frame) =>
      frame
        .split("\n")
        .find((line) => line.startsWith("data: "))
        ?.slice(6),
    )
    .filter((data): data is string => data !== undefined)
    .map((data) => JSON.parse(data));
}

export async function rawEvents(baseUrl: string, runId: string): Promise<unknown[]> {
  const response = await validatingFetch(`${baseUrl}/runs/${runId}/events`);
  return ((await response.json()) as { events: unknown[] }).events;
}

export function describeClientSuite(name: string, baseUrl: () => string): void {
  describe(`${name}: the acp-sdk client`, () => {
    afterEach(() => {
      expect(takeProblems(), "responses that break the OpenAPI schemas").toEqual([]);
    });

    it("pings", async () => {
      await expect(client(baseUrl()).ping()).resolves.toBeUndefined();
    });

    it("lists and reads agents", async () => {
      const c = client(baseUrl());
      const agents = await c.agents();
      expect(agents.map((agent) => agent.name)).toEqual(expect.arrayContaining(["echo", "tokens", "approval", "chat"]));
      const echo = await c.agent("echo");
      expect(echo).toMatchObject({
        name: "echo",
        description: "Echoes its input messages",
        input_content_types: ["*/*"],
      });
      await expect(c.agent("no-such-agent")).rejects.toMatchObject({ name: "ACPError", code: "not_found" });
    });

    it("runs in sync mode", async () => {
      const run = await client(baseUrl()).runSync("echo", "Hello");
      expect(run.status).toBe("completed");
      expect(run.output).toHaveLength(1);
      expect(run.output[0]).toMatchObject({
        role: "agent/echo",
        parts: [{ content: "Hello", content_type: "text/plain" }],
      });
      expect(run.finished_at).toBeTruthy();
    });

    it("runs in async mode and the run completes in the background", async () => {
      const c = client(baseUrl());
      const run = await c.runAsync("tokens", "one two three delay=20");
      expect(run.status).toBe("created");
      const done = await pollRun(c, run.run_id, (r) => TERMINAL.includes(r.status));
      expect(done.status).toBe("completed");
      expect(texts(done)).toBe("one two three ");
    });

    it("shows, while an async run streams, the open message with the tokens so far (as the reference)", async () => {
      const c = client(baseUrl());
      const run = await c.runAsync("tokens", "one two three four five six delay=150");
      const partial = await pollRun(c, run.run_id, (r) => r.output[0] !== undefined || TERMINAL.includes(r.status));
      expect(partial.status).toBe("in-progress");
      expect(partial.output).toHaveLength(1);
      expect(partial.output[0]!.parts.length).toBeLessThan(6);
      expect("one two three four five six ".startsWith(texts(partial))).toBe(true);
      const done = await pollRun(c, run.run_id, (r) => TERMINAL.includes(r.status));
      expect(texts(done)).toBe("one two three four five six ");
    });

    it("streams a run with events in ACP order, and the events of the finished run equal the stream", async () => {
      const c = client(baseUrl());
      const events = await collect(c.runStream("tokens", "alpha beta gamma"));
      expect(types(events)).toEqual([
        "run.created",
        "run.in-progress",
        "message.created",
        "message.part",
        "message.part",
        "message.part",
        "message.completed",
        "run.completed",
      ]);
      const parts = events
        .filter((event) => event.type === "message.part")
        .map((event) => (event.type === "message.part" ? event.part.content : ""));
      expect(parts).toEqual(["alpha ", "beta ", "gamma "]);
      const last = events.at(-1);
      if (last?.type !== "run.completed") throw new Error("no run.completed");
      expect(types(await c.runEvents(last.run.run_id))).toEqual(types(events));
      const raw = await rawStream(baseUrl(), "/runs", {
        agent_name: "artifacts",
        input: [{ role: "user", parts: [{ content: "x" }] }],
        mode: "stream",
      });
      const runId = (raw[0] as { run: { run_id: string } }).run.run_id;
      expect(raw.length).toBeGreaterThan(6);
      expect(await rawEvents(baseUrl(), runId)).toEqual(raw);
    });

    it("lets the client abort a stream while the run goes on", async () => {
      const c = client(baseUrl());
      const controller = new AbortController();
      let runId = "";
      let seen = 0;
      await expect(
        (async () => {
          for await (const event of c.runStream("tokens", "10 word delay=20", controller.signal)) {
            if (event.type === "run.created") runId = event.run.run_id;
            if (event.type === "message.part" && ++seen === 2) controller.abort();
          }
        })(),
      ).rejects.toThrow();
      expect(runId).not.toBe("");
      const done = await pollRun(c, runId, (r) => TERMINAL.includes(r.status));
      expect(done.status).toBe("completed");
      expect(texts(done)).toBe("word ".repeat(10));
    });

    it("fails a run with the agent's ACP error, code and data kept", async () => {
      const c = client(baseUrl());
      const run = await c.runSync("failing", "please");
      expect(run.status).toBe("failed");
      expect(run.error).toEqual({
        code: "invalid_input",
        message: "The failing agent refuses this input",
        data: { hint: "try another agent" },
      });
      const events = await collect(c.runStream("failing", "please"));
      expect(events.at(-1)).toMatchObject({
        type: "run.failed",
        run: { status: "failed", error: { code: "invalid_input" } },
      });
    });

    it("fails a run that throws a plain error with server_error and no internal detail", async () => {
      const run = await client(baseUrl()).runSync("failing", "crash");
      expect(run.status).toBe("failed");
      expect(run.error?.code).toBe("server_error");
      expect(JSON.stringify(run)).not.toContain("internal detail");
    });

    it("cancels an awaiting run", async () => {
      const c = client(baseUrl());
      const run = await c.runSync("approval", "the deploy");
      expect(run.status).toBe("awaiting");
      const cancelling = await c.runCancel(run.run_id);
      expect(cancelling.status).toBe("cancelling");
      const done = await pollRun(c, run.run_id, (r) => TERMINAL.includes(r.status));
      expect(done.status).toBe("cancelled");
      await expect(c.runCancel(run.run_id)).rejects.toMatchObject({ name: "ACPError" });
    });

    it("cancels a running agent", async () => {
      const c = client(baseUrl());
      const run = await c.runAsync("slow", "ticks=100");
      await pollRun(c, run.run_id, (r) => r.status === "in-progress");
      expect((await c.runCancel(run.run_id)).status).toBe("cancelling");
      const done = await pollRun(c, run.run_id, (r) => TERMINAL.includes(r.status));
      expect(done.status).toBe("cancelled");
      const events = await c.runEvents(run.run_id);
      expect(events.at(-1)?.type).toBe("run.cancelled");
    });

    it("cancels during a stream: the stream ends with run.cancelled", async () => {
      const c = client(baseUrl());
      const seen: Event[] = [];
      for await (const event of c.runStream("slow", "ticks=100")) {
        seen.push(event);
        if (event.type === "generic" && event.generic.tick === 2) {
          const runId = seen[0]?.type === "run.created" ? seen[0].run.run_id : "";
          await c.runCancel(runId);
        }
      }
      expect(seen.at(-1)).toMatchObject({ type: "run.cancelled", run: { status: "cancelled" } });
      expect(seen.filter((event) => event.type === "generic").length).toBeLessThan(100);
    });

    it("resumes an awaiting run in sync mode", async () => {
      const c = client(baseUrl());
      const run = await c.runSync("approval", "the deploy");
      expect(run.status).toBe("awaiting");
      expect(run.await_request).toMatchObject({
        type: "message",
        message: { parts: [{ content: "Do you approve the deploy? Answer yes or no." }] },
      });
      const resumed = await c.runResumeSync(run.run_id, {
        type: "message",
        message: { role: "user", parts: [{ content: "yes", content_type: "text/plain" }] },
      } as never);
      expect(resumed.status).toBe("completed");
      expect(texts(resumed)).toBe("Planning the deploy.Approved: doing the deploy.");
      await expect(
        c.runResumeSync(run.run_id, {
          type: "message",
          message: { role: "user", parts: [{ content: "yes" }] },
        } as never),
      ).rejects.toMatchObject({
        name: "ACPError",
        code: "invalid_input",
      });
    });

    it("resumes an awaiting run in async mode", async () => {
      const c = client(baseUrl());
      const run = await c.runSync("approval", "the release");
      const resumed = await c.runResumeAsync(run.run_id, {
        type: "message",
        message: { role: "user", parts: [{ content: "no" }] },
      } as never);
      expect(resumed.status).toBe("in-progress");
      const done = await pollRun(c, run.run_id, (r) => TERMINAL.includes(r.status));
      expect(texts(done)).toBe("Planning the release.Not approved: the release dropped.");
    });

    it("resumes an awaiting run in stream mode", async () => {
      const c = client(baseUrl());
      const first = await collect(c.runStream("approval", "the migration"));
      expect(types(first).at(-1)).toBe("run.awaiting");
      const runId = first[0]?.type === "run.created" ? first[0].run.run_id : "";
      const second = await collect(
        c.runResumeStream(runId, { type: "message", message: { role: "user", parts: [{ content: "yes" }] } } as never),
      );
      expect(types(second)).toEqual([
        "run.in-progress",
        "message.created",
        "message.part",
        "message.completed",
        "run.completed",
      ]);
      expect(types(await c.runEvents(runId))).toEqual(types([...first, ...second]));
      const raw = await rawStream(baseUrl(), "/runs", {
        agent_name: "approval",
        input: [{ role: "user", parts: [{ content: "x" }] }],
        mode: "stream",
      });
      const awaitingId = (raw[0] as { run: { run_id: string } }).run.run_id;
      const resumed = await rawStream(baseUrl(), `/runs/${awaitingId}`, {
        run_id: awaitingId,
        await_resume: { type: "message", message: { role: "user", parts: [{ content: "yes" }] } },
        mode: "stream",
      });
      expect(await rawEvents(baseUrl(), awaitingId)).toEqual([...raw, ...resumed]);
    });

    it("keeps a session's history across runs (withSession)", async () => {
      const c = client(baseUrl());
      const [first, second, sessionId] = await c.withSession(async (session) => {
        const a = await session.runSync("chat", "my name is Ada");
        const b = await session.runSync("chat", "what is my name?");
        return [a, b, session.sessionId];
      });
      expect(texts(first)).toContain("holds 0 earlier messages");
      expect(texts(first)).toContain('You said first: "my name is Ada"');
      expect(texts(second)).toContain("holds 2 earlier messages");
      expect(texts(second)).toContain('You said first: "my name is Ada"');
      expect(first.session_id).toBe(sessionId);
      const session = await validatingFetch(`${baseUrl()}/sessions/${sessionId}`).then(
        (r) => r.json() as Promise<{ id: string; history: string[] }>,
      );
      expect(session.id).toBe(sessionId);
      expect(session.history).toHaveLength(4);
      const items = await Promise.all(
        session.history.map((url) => validatingFetch(url).then((r) => r.json() as Promise<{ role: string }>)),
      );
      expect(items.map((item) => item.role)).toEqual(["user", "agent/chat", "user", "agent/chat"]);
    });

    it("gives a handler the session's earlier messages only: history-echo answers 1, 3, 7 (as the reference)", async () => {
      const c = client(baseUrl());
      const runs = await c.withSession(async (session) => [
        await session.runSync("history-echo", "one"),
        await session.runSync("history-echo", "two"),
        await session.runSync("history-echo", "three"),
      ]);
      expect(runs.map((run) => run.output.length)).toEqual([1, 3, 7]);
      expect(texts(runs[2]!)).toBe("oneonetwooneonetwothree");
    });

    it("keeps mime types and base64 parts", async () => {
      const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
      const input = [
        {
          role: "user",
          parts: [
            { content: '{"a":1}', content_type: "application/json" },
            { content: png, content_type: "image/png", content_encoding: "base64" },
          ],
        },
      ];
      const run = await client(baseUrl()).runSync("echo", input as never);
      expect(run.output[0]?.parts).toMatchObject([
        { content: '{"a":1}', content_type: "application/json", content_encoding: "plain" },
        { content: png, content_type: "image/png", content_encoding: "base64" },
      ]);
    });

    it("returns artifacts, also when streamed", async () => {
      const c = client(baseUrl());
      const run = await c.runSync("artifacts", "the weather");
      const parts = run.output.flatMap((message) => message.parts);
      expect(parts.filter((part) => part.name).map((part) => [part.name, part.content_type])).toEqual([
        ["report.md", "text/markdown"],
        ["data.json", "application/json"],
        ["pixel.png", "image/png"],
      ]);
      const events = await collect(c.runStream("artifacts", "the weather"));
      const streamed = events.flatMap((event) =>
        event.type === "message.part" && event.part.name ? [event.part.name] : [],
      );
      expect(streamed).toEqual(["report.md", "data.json", "pixel.png"]);
    });
  });
}

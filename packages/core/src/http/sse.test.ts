/**
 * How a run's SSE body is cut into chunks: events a stream has at hand at once (a batch its feed
 * read, or a stream behind the log) go out as one chunk, each still its own frame with its id,
 * in order (streams woken together share the burst's encoding, never another start's), and a
 * long burst is split into bounded chunks, each ending on a frame; a stream
 * whose feed cannot read ends with an error event.
 */
import { MemoryStore } from "@acp/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { approval, words } from "../../test/support/agents.ts";
import { createRun, type Frame, parseFrames, startApp, stopApps, type TestApp, user } from "../../test/support/app.ts";
import { interceptStore } from "../../test/support/intercept-store.ts";
import type { Event } from "../models.ts";
import { StoreRefusedError } from "../store.ts";

afterEach(() => stopApps());

const sse = { accept: "text/event-stream" };

async function eventsOf(served: TestApp, runId: string): Promise<Event[]> {
  return (await served.getJson<{ events: Event[] }>(`/runs/${runId}/events`)).events;
}

/** Every chunk of a streamed body, as text. */
async function chunksOf(response: Response): Promise<string[]> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const chunks: string[] = [];
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
    chunks.push(decoder.decode(chunk.value));
  return chunks;
}

const framesOf = (events: Event[], firstSeq: number): Frame[] =>
  events.map((event, index) => ({ id: firstSeq + index, data: event }));

describe("SSE chunks", () => {
  it("sends the events a stream has at hand as one chunk, in order, each with its id", async () => {
    const served = await startApp([words]);
    const run = await createRun(served, { agent_name: "words", input: [user("one two three")] });
    const events = await eventsOf(served, run.run_id);
    expect(events.at(-1)!.type).toBe("run.completed");
    for (const last of [0, 2]) {
      const response = await served.request(`/runs/${run.run_id}/events`, {
        headers: { ...sse, "last-event-id": String(last) },
      });
      // The whole stored log is one read of the feed: one chunk, ending with the terminal event.
      const chunks = await chunksOf(response);
      expect(chunks).toHaveLength(1);
      expect(parseFrames(chunks[0]!)).toEqual(framesOf(events.slice(last), last + 1));
    }
  });

  it("gives streams that follow together the same burst, and a stream from another seq its own", async () => {
    const served = await startApp([words]);
    const run = await createRun(served, { agent_name: "words", input: [user("one two three")] });
    const events = await eventsOf(served, run.run_id);
    // Opened at once, they share the run's feed and its read: the same last event ends each burst.
    const lasts = [0, 0, 2, 0, 2];
    const responses = await Promise.all(
      lasts.map((last) =>
        served.request(`/runs/${run.run_id}/events`, { headers: { ...sse, "last-event-id": String(last) } }),
      ),
    );
    const bodies = await Promise.all(responses.map(chunksOf));
    bodies.forEach((chunks, index) => {
      expect(parseFrames(chunks.join(""))).toEqual(framesOf(events.slice(lasts[index]), lasts[index]! + 1));
    });
  });

  it("splits a long burst into bounded chunks, each ending on a frame, none lost or repeated", async () => {
    const served = await startApp([words]);
    const text = Array.from({ length: 150 }, (_, index) => `w${index}`).join(" ");
    const run = await createRun(served, { agent_name: "words", input: [user(text)] });
    const events = await eventsOf(served, run.run_id);
    const chunks = await chunksOf(await served.request(`/runs/${run.run_id}/events`, { headers: sse }));
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.length).toBeLessThan(events.length);
    const frames = chunks.flatMap((chunk) => parseFrames(chunk));
    expect(frames).toEqual(framesOf(events, 1));
  });

  it("ends a stream whose feed cannot read with an error event, and logs why", async () => {
    const refuse = { on: false };
    const store = interceptStore(new MemoryStore(), (method, _args, call) =>
      refuse.on && method === "readEvents"
        ? Promise.reject(new StoreRefusedError("test", "readEvents refused"))
        : call(),
    );
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const served = await startApp([approval], {}, store);
      const run = await createRun(served, { agent_name: "approval", input: [user("the plan")] });
      expect(run.status).toBe("awaiting");
      refuse.on = true;
      const response = await served.request(`/runs/${run.run_id}/events`, { headers: sse });
      const frames = (await chunksOf(response)).flatMap((chunk) => parseFrames(chunk));
      expect(frames).toEqual([{ data: { type: "error", error: expect.objectContaining({ code: "server_error" }) } }]);
      expect(JSON.stringify(errors.mock.calls)).toContain("readEvents refused");
    } finally {
      errors.mockRestore();
    }
  });
});

/**
 * A bounded soak: 200 concurrent streaming clients through nginx over two instances, on Redis and
 * on PostgreSQL, while one instance is restarted (graceful SIGTERM, then started again on its
 * port). Clients behave as the README advises: a POST answered 503 is retried, a stream that
 * breaks is resumed with Last-Event-ID on whichever instance answers. Every run must end in a
 * terminal state, every completed run's stored events must be complete and in order, and no
 * client may hang (each has a deadline).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, postgresBackend, redisBackend } from "./ha/backends.ts";
import { type Balancer, type Instance, startInstance, startNginx, stopInstances } from "./support/cluster.ts";
import { frameData, frameId, SseFrames } from "./support/sse-frames.ts";

const CLIENTS = 200;
const TOKENS = 40;
const CLIENT_DEADLINE_MS = 60_000;

interface Frame {
  id: number;
  event: { type: string; run?: { run_id: string; status: string } };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads SSE frames until the body ends; calls `onFrame` for each. */
async function readFrames(response: Response, onFrame: (frame: Frame) => void): Promise<void> {
  const reader = response.body!.getReader();
  const splitter = new SseFrames();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    for (const text of splitter.push(chunk.value)) {
      const data = frameData(text);
      if (data) onFrame({ id: frameId(text) ?? NaN, event: JSON.parse(data) });
    }
  }
}

const TERMINAL = new Set(["run.completed", "run.failed", "run.cancelled"]);

/** One client: starts a stream run, resumes the stream wherever it breaks, until the run ends. */
async function streamingClient(
  baseUrl: string,
  index: number,
): Promise<{ runId: string; frames: Frame[]; terminal: string }> {
  const deadline = AbortSignal.timeout(CLIENT_DEADLINE_MS);
  const frames: Frame[] = [];
  let runId = "";
  const onFrame = (frame: Frame): void => {
    if (frame.event.type === "error") return;
    frames.push(frame);
    if (frame.event.type === "run.created") runId = frame.event.run!.run_id;
  };
  const body = JSON.stringify({
    agent_name: "tokens",
    input: [{ role: "user", parts: [{ content: `${TOKENS} c${index} delay=25` }] }],
    mode: "stream",
  });
  while (runId === "") {
    try {
      const response = await fetch(`${baseUrl}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: deadline,
      });
      if (response.status === 503 || response.status === 502) {
        await response.body?.cancel();
        await sleep(100);
        continue;
      }
      await readFrames(response, onFrame);
    } catch (error) {
      if (deadline.aborted) throw error;
      await sleep(100);
    }
  }
  while (!TERMINAL.has(frames.at(-1)?.event.type ?? "")) {
    try {
      const response = await fetch(`${baseUrl}/runs/${runId}/events`, {
        headers: { accept: "text/event-stream", "last-event-id": String(frames.at(-1)?.id ?? 0) },
        signal: deadline,
      });
      if (!response.ok) {
        await response.body?.cancel();
        await sleep(100);
        continue;
      }
      await readFrames(response, onFrame);
    } catch (error) {
      if (deadline.aborted) throw error;
      await sleep(100);
    }
  }
  return { runId, frames, terminal: frames.at(-1)!.event.type };
}

function describeSoak(makeBackend: () => Backend): void {
  const backend = makeBackend();
  const env = { ...backend.env, ACP_LEASE_MS: "3000", ACP_DRAIN_MS: "4000" };
  let a: Instance;
  let b: Instance;
  let balancer: Balancer;

  beforeAll(async () => {
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    balancer = await startNginx([a.url, b.url]);
  });

  afterAll(async () => {
    await balancer?.stop();
    await stopInstances([a, b].filter(Boolean));
    await backend.cleanup();
  });

  describe(`soak on ${backend.name}`, () => {
    it(`${CLIENTS} streaming clients over two instances while one restarts: every run ends, no event lost`, async () => {
      const clients = Array.from({ length: CLIENTS }, (_, index) =>
        sleep(index * 5).then(() => streamingClient(balancer.url, index)),
      );
      await sleep(600);
      a.kill("SIGTERM");
      expect(await a.exited).toBe(0);
      a = await startInstance(env, a.port);
      const results = await Promise.all(clients);

      expect(results).toHaveLength(CLIENTS);
      const terminals = new Map<string, number>();
      for (const result of results) terminals.set(result.terminal, (terminals.get(result.terminal) ?? 0) + 1);
      // Runs on the drained instance may be failed by its drain deadline; all others complete.
      expect([...terminals.keys()].every((type) => TERMINAL.has(type))).toBe(true);
      expect(terminals.get("run.completed") ?? 0).toBeGreaterThan(CLIENTS / 2);

      for (const result of results) {
        // What the client saw: seq 1..n, each once, in order, despite broken streams.
        expect(result.frames.map((frame) => frame.id)).toEqual(result.frames.map((_, i) => i + 1));
        const stored = (await (await fetch(`${b.url}/runs/${result.runId}/events`)).json()) as {
          events: Frame["event"][];
        };
        expect(stored.events).toEqual(result.frames.map((frame) => frame.event));
        if (result.terminal === "run.completed") {
          expect(stored.events.filter((event) => event.type === "message.part")).toHaveLength(TOKENS);
        }
      }
    }, 120_000);
  });
}

describeSoak(redisBackend);
describeSoak(postgresBackend);

/**
 * High availability on one backend: two demo instances behind a real nginx (round robin, no
 * affinity) pass the whole client suite, and each cross-instance promise of the HA guide holds
 * when the two instances are addressed directly.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, collect, describeClientSuite, pollRun, rawEvents } from "../client-suite.ts";
import { type Balancer, type Instance, startInstance, startNginx, stopInstances } from "../support/cluster.ts";
import { frameData, frameId, SseFrames } from "../support/sse-frames.ts";
import type { Backend } from "./backends.ts";

const TERMINAL = ["completed", "failed", "cancelled"];
const LEASE_MS = 2000;

const user = (content: string) => ({ role: "user", parts: [{ content }] });

/** POSTs a stream run and reads `frames` SSE frames, then drops the connection. */
async function readSomeFrames(
  url: string,
  body: unknown,
  frames: number,
): Promise<{ id: number; data: { type: string } }[]> {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  return readFrames(response, frames, controller);
}

async function readFrames(
  response: Response,
  limit: number,
  controller?: AbortController,
): Promise<{ id: number; data: { type: string } }[]> {
  const reader = response.body!.getReader();
  const splitter = new SseFrames();
  const frames: { id: number; data: { type: string } }[] = [];
  while (frames.length < limit) {
    const chunk = await reader.read();
    if (chunk.done) break;
    for (const frame of splitter.push(chunk.value)) {
      const data = frameData(frame);
      if (data && frames.length < limit) frames.push({ id: frameId(frame) ?? NaN, data: JSON.parse(data) });
    }
  }
  controller?.abort();
  await reader.cancel().catch(() => {});
  return frames;
}

export function describeHighAvailability(makeBackend: () => Backend): void {
  const backend = makeBackend();
  const env = { ...backend.env, ACP_LEASE_MS: String(LEASE_MS), ACP_DRAIN_MS: "3000" };
  let a: Instance;
  let b: Instance;
  let balancer: Balancer;
  const extra: Instance[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    balancer = await startNginx([a.url, b.url]);
  });

  afterAll(async () => {
    await balancer?.stop();
    await stopInstances([a, b, ...extra].filter(Boolean));
    await backend.cleanup();
  });

  describeClientSuite(`two instances on ${backend.name} behind nginx`, () => balancer.url);

  describe(`two instances on ${backend.name}: any instance answers any request`, () => {
    it("follows on B a run that runs on A, and B reads its state", async () => {
      const run = await client(a.url).runAsync("tokens", "5 word delay=30");
      const response = await fetch(`${b.url}/runs/${run.run_id}/events`, { headers: { accept: "text/event-stream" } });
      const frames = await readFrames(response, 1000);
      expect(frames.map((frame) => frame.id)).toEqual(frames.map((_, index) => index + 1));
      expect(frames.at(-1)?.data.type).toBe("run.completed");
      expect(frames.filter((frame) => frame.data.type === "message.part")).toHaveLength(5);
      expect((await client(b.url).runStatus(run.run_id)).status).toBe("completed");
      expect(await rawEvents(b.url, run.run_id)).toEqual(frames.map((frame) => frame.data));
    });

    it("shows on A and B alike the growing output of a run streaming on A, read again and again", async () => {
      const words = Array.from({ length: 80 }, (_, index) => `w${index}`);
      const run = await client(a.url).runAsync("tokens", `${words.join(" ")} delay=8`);
      const expected = words.map((word) => `${word} `);
      const seen: string[][] = [];
      let status = "";
      // Each instance reads the run several times while it streams: later reads carry on from earlier ones.
      for (let poll = 0; !TERMINAL.includes(status) && poll < 1000; poll++) {
        const response = await fetch(`${poll % 2 === 0 ? a.url : b.url}/runs/${run.run_id}`);
        const body = (await response.json()) as { status: string; output: { parts: { content?: string }[] }[] };
        status = body.status;
        expect(body.output.length).toBeLessThanOrEqual(1);
        seen.push(body.output.flatMap((message) => message.parts.map((part) => part.content ?? "")));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(status).toBe("completed");
      expect(seen.at(-1)).toEqual(expected);
      // Every read showed the parts so far, each once and in order.
      for (const parts of seen) expect(parts).toEqual(expected.slice(0, parts.length));
      expect(seen.filter((parts) => parts.length > 0 && parts.length < expected.length).length).toBeGreaterThan(4);
    });

    it("resumes on B, in stream mode, a run suspended on A", async () => {
      const awaiting = await client(a.url).runSync("approval", "the rollout");
      expect(awaiting.status).toBe("awaiting");
      const events = await collect(
        client(b.url).runResumeStream(awaiting.run_id, {
          type: "message",
          message: { role: "user", parts: [{ content: "yes" }] },
        } as never),
      );
      expect(events.map((event) => event.type)).toEqual([
        "run.in-progress",
        "message.created",
        "message.part",
        "message.completed",
        "run.completed",
      ]);
      const done = await client(a.url).runStatus(awaiting.run_id);
      expect(done.output.at(-1)?.parts[0]?.content).toBe("Approved: doing the rollout.");
    });

    it("cancels on B a run that runs on A", async () => {
      const run = await client(a.url).runAsync("slow", "ticks=100");
      await pollRun(client(a.url), run.run_id, (r) => r.status === "in-progress");
      expect((await client(b.url).runCancel(run.run_id)).status).toBe("cancelling");
      const done = await pollRun(client(a.url), run.run_id, (r) => TERMINAL.includes(r.status));
      expect(done.status).toBe("cancelled");
    });

    it("lets exactly one of two resumes of one await win when they race through A and B", async () => {
      const awaiting = await client(a.url).runSync("approval", "the race");
      const resume = (url: string, answer: string) =>
        fetch(`${url}/runs/${awaiting.run_id}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ await_resume: { type: "message", message: user(answer) }, mode: "async" }),
        });
      const answers = await Promise.all([resume(a.url, "yes"), resume(b.url, "no")]);
      expect(answers.map((response) => response.status).sort()).toEqual([202, 403]);
      const done = await pollRun(client(b.url), awaiting.run_id, (r) => TERMINAL.includes(r.status));
      const winner = answers[0]!.status === 202 ? "Approved" : "Not approved";
      expect(done.output.at(-1)?.parts[0]?.content).toContain(winner);
      const inProgress = (await rawEvents(a.url, awaiting.run_id)).filter(
        (event) => (event as { type: string }).type === "run.in-progress",
      );
      expect(inProgress).toHaveLength(2);
    });

    it("continues on B a session started on A, and both serve its history", async () => {
      const sessionId = randomUUID();
      const first = await client(a.url).withSession((session) => session.runSync("chat", "I am on A"), sessionId);
      const second = await client(b.url).withSession((session) => session.runSync("chat", "now on B"), sessionId);
      expect(first.output[0]?.parts[0]?.content).toContain("holds 0 earlier messages");
      expect(second.output[0]?.parts[0]?.content).toContain("holds 2 earlier messages");
      expect(second.output[0]?.parts[0]?.content).toContain('You said first: "I am on A"');
      for (const instance of [a, b]) {
        const session = (await (await fetch(`${instance.url}/sessions/${sessionId}`)).json()) as { history: string[] };
        expect(session.history).toHaveLength(4);
        for (const url of session.history) {
          const other = instance === a ? b : a;
          const response = await fetch(`${other.url}${new URL(url).pathname}`);
          expect(response.status).toBe(200);
        }
      }
    });

    it("resumes on B, with Last-Event-ID, a stream cut on A: nothing lost, nothing repeated", async () => {
      const body = { agent_name: "tokens", input: [user("30 word delay=15")], mode: "stream" };
      const head = await readSomeFrames(`${a.url}/runs`, body, 6);
      const runId = (head[0]!.data as unknown as { run: { run_id: string } }).run.run_id;
      const lastId = head.at(-1)!.id;
      const response = await fetch(`${b.url}/runs/${runId}/events`, {
        headers: { accept: "text/event-stream", "last-event-id": String(lastId) },
      });
      const tail = await readFrames(response, 10_000);
      expect(tail.at(-1)?.data.type).toBe("run.completed");
      const ids = [...head, ...tail].map((frame) => frame.id);
      expect(ids).toEqual(ids.map((_, index) => index + 1));
      expect(await rawEvents(b.url, runId)).toEqual([...head, ...tail].map((frame) => frame.data));
    });

    it("keeps finished runs, their events and sessions across a restart of every instance", async () => {
      const sessionId = randomUUID();
      const run = await client(balancer.url).withSession(
        (session) => session.runSync("echo", "remember me"),
        sessionId,
      );
      const events = await rawEvents(a.url, run.run_id);
      await stopInstances([a, b]);
      [a, b] = await Promise.all([startInstance(env, a.port), startInstance(env, b.port)]);
      expect(await client(balancer.url).runStatus(run.run_id)).toMatchObject({
        status: "completed",
        output: run.output,
      });
      expect(await rawEvents(b.url, run.run_id)).toEqual(events);
      const session = (await (await fetch(`${a.url}/sessions/${sessionId}`)).json()) as { history: string[] };
      expect(session.history).toHaveLength(2);
    }, 60_000);

    it("fails the runs of an instance that dies (SIGKILL) once its lease runs out", async () => {
      const doomed = await startInstance(env);
      extra.push(doomed);
      const running = await client(doomed.url).runAsync("slow", "ticks=600");
      const awaiting = await client(doomed.url).runSync("approval", "the orphan");
      await pollRun(client(a.url), running.run_id, (r) => r.status === "in-progress");
      doomed.kill("SIGKILL");
      await doomed.exited;
      for (const runId of [running.run_id, awaiting.run_id]) {
        const failed = await pollRun(client(b.url), runId, (r) => TERMINAL.includes(r.status), LEASE_MS + 8000);
        expect(failed.status).toBe("failed");
        expect(failed.error?.code).toBe("server_error");
        expect(failed.error?.message).toContain("instance");
        const events = await rawEvents(a.url, runId);
        expect((events.at(-1) as { type: string }).type).toBe("run.failed");
      }
    }, 60_000);

    it("drains on SIGTERM: refuses new runs, finishes what it can, fails the rest, exits 0", async () => {
      const draining = await startInstance({ ...env, ACP_DRAIN_MS: "2500" });
      extra.push(draining);
      const quick = await client(draining.url).runAsync("slow", "ticks=8");
      const long = await client(draining.url).runAsync("slow", "ticks=600");
      await pollRun(client(draining.url), long.run_id, (r) => r.status === "in-progress");
      draining.kill("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await fetch(`${draining.url}/ping`)).status).toBe(503);
      const refused = await fetch(`${draining.url}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ agent_name: "echo", input: [user("hi")] }),
      });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ code: "server_error" });
      expect(await draining.exited).toBe(0);
      expect((await client(a.url).runStatus(quick.run_id)).status).toBe("completed");
      const failed = await client(a.url).runStatus(long.run_id);
      expect(failed.status).toBe("failed");
      expect(failed.error?.message).toContain("shut down");
    }, 60_000);
  });
}

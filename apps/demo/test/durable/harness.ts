/**
 * What the durable-run tests share: plain HTTP against real demo instances (every request
 * bounded, so a hang fails a test instead of stalling it), the event log of a run read back as
 * SSE frames with their ids, the checks every durable log must pass, and the step log the demo's
 * durable agents write (ACP_DEMO_STEP_LOG) to show how often each step's function really ran.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { frameData, frameId, SseFrames } from "../support/sse-frames.ts";
import { pollUntil } from "../support/until.ts";

/** The lease of every instance: short, so that takeovers happen within a test's patience. */
export const LEASE_MS = 1000;
/** "Adopted within lease + a few seconds": the few seconds. */
export const ADOPTION_SLACK_MS = 4000;
/** The bound on one HTTP request. */
const REQUEST_MS = 10_000;

export const TERMINAL = ["completed", "failed", "cancelled"];

export interface RunJson {
  run_id: string;
  status: string;
  output: { parts: { content?: string }[] }[];
  error?: { code: string; message: string } | null;
}

export interface EventJson {
  type: string;
  part?: { content?: string };
  run?: RunJson;
}

/** One SSE frame of a run's log: `id` is the event's seq. */
export interface Frame {
  id: number;
  data: EventJson;
}

const user = (content: string) => ({ role: "user", parts: [{ content }] });

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `check` every 50 ms until it returns something other than undefined; fails after `ms` saying `what`. */
export function until<T>(what: string | (() => string), check: () => Promise<T | undefined>, ms: number): Promise<T> {
  return pollUntil(what, check, ms, 50);
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_MS),
  });
}

/** Creates a run of `agent` with one user message; sync mode answers once the run awaits or ends. */
export async function createRun(url: string, agent: string, text: string, mode: "async" | "sync"): Promise<RunJson> {
  const response = await postJson(`${url}/runs`, { agent_name: agent, input: [user(text)], mode });
  const body = (await response.json()) as RunJson;
  expect(response.status, JSON.stringify(body)).toBe(mode === "async" ? 202 : 200);
  return body;
}

/** Resumes an awaiting run with a user message saying `answer`. */
export async function resumeRun(
  url: string,
  runId: string,
  answer: string,
  mode: "async" | "sync",
): Promise<{ status: number; run: RunJson }> {
  const response = await postJson(`${url}/runs/${runId}`, {
    await_resume: { type: "message", message: user(answer) },
    mode,
  });
  return { status: response.status, run: (await response.json()) as RunJson };
}

export async function getRun(url: string, runId: string): Promise<RunJson> {
  const response = await fetch(`${url}/runs/${runId}`, { signal: AbortSignal.timeout(REQUEST_MS) });
  if (!response.ok) throw new Error(`GET /runs/${runId}: ${response.status}`);
  return (await response.json()) as RunJson;
}

/** The run once `done` holds for it (read from `url`), within `ms`. */
export function waitForRun(url: string, runId: string, done: (run: RunJson) => boolean, ms: number): Promise<RunJson> {
  let status = "unknown";
  return until(
    () => `run ${runId} (last seen ${status})`,
    async () => {
      const run = await getRun(url, runId);
      status = run.status;
      return done(run) ? run : undefined;
    },
    ms,
  );
}

export const ended = (run: RunJson): boolean => TERMINAL.includes(run.status);

/**
 * Every run of `runIds` once it has ended (read from `url`), within `ms` for all of them; else
 * fails listing those that did not end, with their status.
 */
export async function waitForRunsToEnd(url: string, runIds: string[], ms: number): Promise<RunJson[]> {
  const deadline = Date.now() + ms;
  const done = new Map<string, RunJson>();
  let last = new Map<string, string>();
  for (;;) {
    const pending = runIds.filter((runId) => !done.has(runId));
    if (pending.length === 0) return runIds.map((runId) => done.get(runId)!);
    if (Date.now() > deadline)
      throw new Error(
        `${pending.length} of ${runIds.length} runs did not end within ${ms} ms: ${pending
          .slice(0, 10)
          .map((runId) => `${runId} ${last.get(runId) ?? "unread"}`)
          .join(", ")}`,
      );
    last = new Map();
    for (let start = 0; start < pending.length; start += 10) {
      await Promise.all(
        pending.slice(start, start + 10).map(async (runId) => {
          const run = await getRun(url, runId).catch(() => undefined);
          if (run === undefined) return;
          last.set(runId, run.status);
          if (ended(run)) done.set(runId, run);
        }),
      );
    }
    await sleep(250);
  }
}

/** The run's events as stored (JSON), however far the run has got. */
export async function storedEvents(url: string, runId: string): Promise<EventJson[]> {
  const response = await fetch(`${url}/runs/${runId}/events`, { signal: AbortSignal.timeout(REQUEST_MS) });
  if (!response.ok) throw new Error(`GET /runs/${runId}/events: ${response.status}`);
  return ((await response.json()) as { events: EventJson[] }).events;
}

/** The whole log of a run that has ended, as SSE frames with their ids (the stream ends with the run). */
export async function eventLog(url: string, runId: string): Promise<Frame[]> {
  const response = await fetch(`${url}/runs/${runId}/events`, {
    headers: { accept: "text/event-stream" },
    signal: AbortSignal.timeout(REQUEST_MS),
  });
  expect(response.status).toBe(200);
  const splitter = new SseFrames();
  const frames: Frame[] = [];
  const text = new TextEncoder().encode(await response.text());
  for (const frame of splitter.push(text)) {
    const data = frameData(frame);
    if (data !== undefined) frames.push({ id: frameId(frame) ?? Number.NaN, data: JSON.parse(data) });
  }
  return frames;
}

/**
 * What every log of a run that has ended must show, however many instances drove it: ids 1 to n
 * without a gap, exactly one terminal event and it comes last, and every message created once
 * and completed once (nothing emitted twice).
 */
export function expectCleanLog(frames: Frame[], runId: string): void {
  const ids = frames.map((frame) => frame.id);
  expect(ids, `event ids of ${runId}`).toEqual(ids.map((_, index) => index + 1));
  const terminal = frames.filter((frame) => TERMINAL.some((status) => frame.data.type === `run.${status}`));
  expect(terminal, `terminal events of ${runId}`).toHaveLength(1);
  expect(frames.at(-1)?.data.type, `last event of ${runId}`).toBe(terminal[0]?.data.type);
  const created = frames.filter((frame) => frame.data.type === "message.created").length;
  const completed = frames.filter((frame) => frame.data.type === "message.completed").length;
  expect(completed, `completed messages of ${runId}`).toBe(created);
  expect(completed, `completed messages of ${runId} against its output`).toBe(terminal[0]?.data.run?.output.length);
  // What the messages say at the end is what was streamed, part by part.
  const completedParts = frames
    .filter((frame) => frame.data.type === "message.completed")
    .flatMap((frame) => (frame.data as { message?: RunJson["output"][number] }).message?.parts ?? [])
    .map((part) => part.content ?? "");
  expect(completedParts, `completed messages of ${runId} against the parts streamed`).toEqual(partTexts(frames));
}

/** The text of every `message.part` event, in order. */
export function partTexts(frames: Frame[]): string[] {
  return frames.filter((frame) => frame.data.type === "message.part").map((frame) => frame.data.part?.content ?? "");
}

/** One part of the durable-steps agent: `step <i> of <n> (attempt <a>)`. */
export interface StepPart {
  index: number;
  count: number;
  attempt: number;
}

export function stepParts(frames: Frame[]): StepPart[] {
  return partTexts(frames).map((text) => {
    const match = /^step (\d+) of (\d+) \(attempt (\d+)\)/.exec(text);
    if (!match) throw new Error(`not a durable-steps part: ${JSON.stringify(text)}`);
    return { index: Number(match[1]), count: Number(match[2]), attempt: Number(match[3]) };
  });
}

/**
 * The durable-steps log has each step's part exactly once, in order; attempts never go back
 * (a stale owner's part after the new owner's would show as one).
 */
export function expectEveryStepOnce(frames: Frame[], count: number, runId: string): StepPart[] {
  const parts = stepParts(frames);
  expect(
    parts.map((part) => part.index),
    `step parts of ${runId}`,
  ).toEqual(Array.from({ length: count }, (_, index) => index + 1));
  const attempts = parts.map((part) => part.attempt);
  expect(attempts, `attempts of ${runId}`).toEqual([...attempts].sort((x, y) => x - y));
  return parts;
}

/** A directory for the step logs of the demo's durable agents (ACP_DEMO_STEP_LOG). */
export async function stepLogDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "acp-steps-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface StepRan {
  step: string;
  attempt: number;
  pid: number;
}

/** Every time a step's function of `runId` started, in order. */
export async function stepsRan(dir: string, runId: string): Promise<StepRan[]> {
  const text = await readFile(path.join(dir, `${runId}.log`), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [step, attempt, pid] = line.split(" ");
      return { step: step!, attempt: Number(attempt!.slice(8)), pid: Number(pid!.slice(4)) };
    });
}

/** How many times each step's function ran. */
export function runsPerStep(ran: StepRan[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { step } of ran) counts.set(step, (counts.get(step) ?? 0) + 1);
  return counts;
}

/**
 * Each of `steps` ran at least once, and at most `takeovers` of them twice (each takeover may
 * repeat the one step in flight when the owner was lost), none more often.
 */
export function expectStepsRanOnce(ran: StepRan[], steps: string[], takeovers: number, runId: string): void {
  const counts = runsPerStep(ran);
  for (const step of steps) expect(counts.get(step) ?? 0, `times ${step} of ${runId} ran`).toBeGreaterThanOrEqual(1);
  expect([...counts.keys()].sort(), `steps of ${runId} that ran`).toEqual([...steps].sort());
  const repeated = [...counts.entries()].filter(([, times]) => times > 1);
  expect(
    repeated.reduce((sum, [, times]) => sum + times - 1, 0),
    `repeated step runs of ${runId}: ${JSON.stringify(repeated)}`,
  ).toBeLessThanOrEqual(takeovers);
}

export const stepNames = (count: number): string[] => Array.from({ length: count }, (_, i) => `step-${i + 1}`);

/**
 * Small agents for core's tests, each showing one behaviour: echo, a slow run that stops when
 * cancelled, a run that awaits a resume, a streaming run, and failing runs.
 */
import { ACPError, agent, type Message } from "../../src/index.ts";

/** The text of every text part, joined with spaces. */
export function textOf(input: Message[]): string {
  return input
    .flatMap((message) => message.parts)
    .map((part) => part.content ?? "")
    .join(" ");
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts (a cancel). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Yields every input message back unchanged. */
export const echo = agent(
  { name: "echo", description: "Echoes its input messages" },
  async function* echoHandler(input) {
    for (const message of input) yield message;
  },
);

/** A tick every `ms=<n>` milliseconds (default 100), `ticks=<n>` times (default 50); stops when cancelled. */
export const slow = agent(
  { name: "slow", description: "A long task that can be cancelled" },
  async function* slowHandler(input, ctx) {
    const text = textOf(input);
    const ticks = Number(/ticks=(\d+)/.exec(text)?.[1] ?? 50);
    const ms = Number(/ms=(\d+)/.exec(text)?.[1] ?? 100);
    for (let tick = 1; tick <= ticks; tick++) {
      await sleep(ms, ctx.signal);
      yield `tick ${tick} `;
    }
  },
);

/** Says what it plans, asks for approval (the run awaits), then answers by the resume's first letter. */
export const approval = agent(
  { name: "approval", description: "Asks for approval before it acts" },
  async function* approvalHandler(input) {
    const task = textOf(input) || "the task";
    yield `Planning ${task}.`;
    const answer = yield { type: "message", message: { parts: [{ content: `Do you approve ${task}?` }] } };
    const reply = answer ? textOf([answer.message]).trim().toLowerCase() : "";
    yield { parts: [{ content: reply.startsWith("y") ? `Approved: ${task}.` : `Not approved: ${task}.` }] };
  },
);

/** Streams the input text back one word at a time, as text parts of one message. */
export const words = agent(
  { name: "words", description: "Streams its input one word at a time" },
  async function* wordsHandler(input) {
    for (const word of textOf(input).split(/\s+/).filter(Boolean)) yield `${word} `;
  },
);

/** Fails: with an ACP error whose code and message reach the client or, for "crash", a plain error. */
export const failing = agent(
  { name: "failing", description: "Fails on purpose" },
  async function* failingHandler(input) {
    yield "Working…";
    if (textOf(input).includes("crash")) throw new Error("internal detail that must not leak");
    throw new ACPError({
      code: "invalid_input",
      message: "The failing agent refuses this input",
      data: { hint: "try another agent" },
    });
  },
);

export const testAgents = [echo, slow, approval, words, failing];

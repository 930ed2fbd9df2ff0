/**
 * The agents the bench servers run: the demo's `echo` (sync throughput) and `approval` (runs that
 * stay open, awaiting), plus three that exist only to be measured.
 */
import { agent } from "@acp/core";
import { approval, echo } from "../src/agents.ts";
import { wallClockMs } from "./clock.ts";

export { wallClockMs };

function option(input: { parts: { content?: string }[] }[], name: string, fallback: number): number {
  const text = input.flatMap((message) => message.parts.map((part) => part.content ?? "")).join(" ");
  const match = new RegExp(`${name}=(\\d+)`).exec(text);
  return match ? Number(match[1]) : fallback;
}

/** Yields `n=<N>` short text parts as fast as the runtime takes them: the cost of an event. */
export const parts = agent({ name: "parts", description: "Yields n=<N> text parts" }, async function* (input) {
  const n = option(input, "n", 100);
  for (let index = 0; index < n; index++) yield "tok ";
});

/**
 * After `delay=<ms>` (time for a follower to attach), yields `count=<N>` parts, one per timer
 * tick (about one a millisecond), each holding the wall-clock time it was yielded at.
 */
export const ticker = agent(
  { name: "ticker", description: "Yields timestamped parts at a steady rate" },
  async function* (input) {
    const count = option(input, "count", 1000);
    const delay = option(input, "delay", 1000);
    await new Promise((resolve) => setTimeout(resolve, delay));
    for (let index = 0; index < count; index++) {
      yield String(wallClockMs());
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  },
);

/**
 * Fan-out: awaits first (so that the bench can open every follower before anything moves), then,
 * once resumed, yields `count=<N>` parts every `interval=<ms>`, each holding the wall-clock time
 * it was yielded at.
 */
export const broadcast = agent(
  { name: "broadcast", description: "Awaits, then yields timestamped parts at a steady rate" },
  async function* (input) {
    const count = option(input, "count", 100);
    const interval = option(input, "interval", 50);
    yield { type: "message", message: { parts: [{ content: "Resume to start." }] } };
    for (let index = 0; index < count; index++) {
      yield String(wallClockMs());
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  },
);

/** Resolves when `signal` aborts: a step that waits for its owner's loss. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/**
 * Durable: `steps=<N>` recorded steps with `events=<M>` text parts yielded among them (M / N after
 * each step). With `takeover=1` it then enters a last step that, on the first attempt, waits until
 * its instance is lost; on a later attempt (the replay has reached live: every earlier step and
 * part came from the store) it returns the wall-clock time at once, which the run yields last.
 */
export const durableReplay = agent(
  { name: "durable-replay", description: "Records N steps and M events, then waits to be taken over", durable: true },
  async function* (input, ctx) {
    const steps = option(input, "steps", 1000);
    const events = option(input, "events", 10_000);
    const perStep = steps > 0 ? Math.floor(events / steps) : 0;
    for (let index = 0; index < steps; index++) {
      await ctx.step(`s${index}`, () => index);
      for (let event = 0; event < perStep; event++) yield "e ";
    }
    for (let event = perStep * steps; event < events; event++) yield "e ";
    if (option(input, "takeover", 0) !== 1) return;
    const liveAt = await ctx.step("live", (signal) => (ctx.attempt === 1 ? untilAborted(signal) : wallClockMs()));
    yield `live ${liveAt}`;
  },
);

export const benchAgents = [echo, approval, parts, ticker, broadcast, durableReplay];

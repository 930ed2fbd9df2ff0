/**
 * The agents the bench servers run: the demo's `echo` (sync throughput) and `approval` (runs that
 * stay open, awaiting), plus two that exist only to be measured.
 */
import { agent } from "@acp/core";
import { approval, echo } from "../src/agents.ts";

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

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

export const benchAgents = [echo, approval, parts, ticker];

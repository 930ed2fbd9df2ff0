/**
 * Agents that show every feature of the server. The end-to-end tests drive these same agents,
 * through one instance and through two behind a load balancer.
 */
import { appendFile } from "node:fs/promises";
import path from "node:path";
import { ACPError, type AgentContext, agent, type Message } from "@acp/core";

function textOf(input: Message[]): string {
  return input
    .flatMap((message) => message.parts)
    .filter((part) => part.content_type.startsWith("text/") && part.content_encoding !== "base64")
    .map((part) => part.content ?? "")
    .join(" ");
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts (a cancel). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Yields every input message back: parts, content types and encodings unchanged. */
export const echo = agent({ name: "echo", description: "Echoes its input messages" }, async function* (input) {
  for (const message of input) yield message;
});

/**
 * Streams its input back word by word, like a language model streams tokens. A leading number
 * ("200 hello") repeats the text that many times; `delay=<ms>` sets the pause between tokens.
 */
export const tokens = agent(
  {
    name: "tokens",
    description: "Streams the input text back one token at a time",
    output_content_types: ["text/plain"],
  },
  async function* (input, ctx) {
    const words = textOf(input).split(/\s+/).filter(Boolean);
    const delay = Number(words.find((word) => word.startsWith("delay="))?.slice(6) ?? 0);
    const rest = words.filter((word) => !word.startsWith("delay="));
    const repeat = /^\d+$/.test(rest[0] ?? "") ? Number(rest.shift()) : 1;
    for (let round = 0; round < repeat; round++) {
      for (const word of rest.length > 0 ? rest : ["…"]) {
        if (delay > 0) await sleep(delay, ctx.signal);
        yield `${word} `;
      }
    }
  },
);

/** Asks a human for approval and waits (status `awaiting`) until the client resumes the run. */
export const approval = agent(
  { name: "approval", description: "Asks for approval before it acts; resume with a message saying yes or no" },
  async function* (input) {
    const task = textOf(input) || "the task";
    yield `Planning ${task}.`;
    const answer = yield {
      type: "message",
      message: { parts: [{ content: `Do you approve ${task}? Answer yes or no.` }] },
    };
    const reply = answer ? textOf([answer.message]).trim().toLowerCase() : "";
    yield {
      parts: [{ content: reply.startsWith("y") ? `Approved: doing ${task}.` : `Not approved: ${task} dropped.` }],
    };
  },
);

const PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/** Produces artifacts (named parts) of several content types, one of them base64-encoded. */
export const artifacts = agent(
  {
    name: "artifacts",
    description: "Produces a report, a data file and an image as artifacts",
    output_content_types: ["text/markdown", "application/json", "image/png", "text/plain"],
  },
  async function* (input) {
    const topic = textOf(input) || "nothing";
    yield `Here are the artifacts about ${topic}.`;
    yield { name: "report.md", content_type: "text/markdown", content: `# Report\n\nAbout ${topic}.` };
    yield {
      name: "data.json",
      content_type: "application/json",
      content: JSON.stringify({ topic, words: topic.split(/\s+/).length }),
    };
    yield { name: "pixel.png", content_type: "image/png", content_encoding: "base64", content: PIXEL_PNG };
  },
);

/** Remembers the session: answers with how many earlier messages the session holds and what came first. */
export const chat = agent(
  { name: "chat", description: "A chat agent that remembers the conversation of its session" },
  async function* (input, ctx) {
    // The history holds the session's earlier runs only: on a first turn it is empty.
    const history: Message[] = [];
    for await (const message of ctx.session.loadHistory()) history.push(message);
    const first = textOf(history.length > 0 ? history.slice(0, 1) : input);
    const earlier = `${history.length} earlier message${history.length === 1 ? "" : "s"}`;
    yield `Session ${ctx.sessionId} holds ${earlier}. You said first: "${first}". You say now: "${textOf(input)}".`;
  },
);

/** The reference's end-to-end agent: yields the session's earlier messages, then its input (1, 3, 7 messages on turns 1, 2, 3). */
export const historyEcho = agent(
  { name: "history-echo", description: "Yields the session's history, then its input" },
  async function* (input, ctx) {
    for await (const message of ctx.session.loadHistory()) yield message;
    for (const message of input) yield message;
  },
);

/** Fails on purpose: with an ACP error (its code reaches the client) or, for "crash", a plain error. */
export const failing = agent(
  { name: "failing", description: "Fails: shows how errors reach the client" },
  async function* (input) {
    yield "Working…";
    if (textOf(input).includes("crash")) throw new Error("internal detail that must not leak");
    throw new ACPError({
      code: "invalid_input",
      message: "The failing agent refuses this input",
      data: { hint: "try another agent" },
    });
  },
);

/** Works slowly (a tick every 100 ms, `ticks=<n>`, default 50) and stops as soon as it is cancelled. */
export const slow = agent(
  { name: "slow", description: "A long task that can be cancelled" },
  async function* (input, ctx) {
    const ticks = Number(/ticks=(\d+)/.exec(textOf(input))?.[1] ?? 50);
    for (let tick = 1; tick <= ticks; tick++) {
      await sleep(100, ctx.signal);
      yield { tick };
      yield `tick ${tick} `;
    }
  },
);

/**
 * Notes that a step's function is running: with ACP_DEMO_STEP_LOG set to a directory, appends
 * `<step> attempt=<n> pid=<pid>` to `<dir>/<run id>.log`, so tests can count how often each step
 * really ran (a replay that returns a recorded result writes nothing).
 */
async function noteStepRan(ctx: AgentContext, step: string): Promise<void> {
  const dir = process.env.ACP_DEMO_STEP_LOG;
  if (!dir) return;
  await appendFile(path.join(dir, `${ctx.runId}.log`), `${step} attempt=${ctx.attempt} pid=${process.pid}\n`);
}

/**
 * A durable run of `<n> steps` (default 10), each a recorded step that works `delay=<ms>`
 * (default 200) and then yields `step <i> of <n> (attempt <a>)`. Killed halfway, another
 * instance adopts it: the steps done return their recorded results without running again, the
 * parts already sent are not sent twice, and the parts that follow say attempt 2.
 */
export const durableSteps = agent(
  {
    name: "durable-steps",
    description: 'Runs N recorded steps ("10 steps delay=200"); survives the loss of its instance',
    durable: true,
  },
  async function* (input, ctx) {
    const text = textOf(input);
    const count = Number(/(\d+)\s*steps?/.exec(text)?.[1] ?? 10);
    const delay = Number(/delay=(\d+)/.exec(text)?.[1] ?? 200);
    for (let index = 1; index <= count; index++) {
      const name = `step-${index}`;
      const done = await ctx.step(name, async (signal) => {
        await noteStepRan(ctx, name);
        await sleep(delay, signal);
        return { index, at: new Date().toISOString() };
      });
      yield `step ${done.index} of ${count} (attempt ${ctx.attempt})\n`;
    }
  },
);

/**
 * The approval flow, durable: a recorded "plan" step, then a question (the run awaits), then an
 * "act" step when the answer is yes. The instance that asked may be gone when the answer comes:
 * whichever instance receives the resume carries the run on, and the plan is not made again.
 */
export const durableApproval = agent(
  {
    name: "durable-approval",
    description: "Plans (a recorded step), asks for approval, then acts; survives restarts while it waits",
    durable: true,
  },
  async function* (input, ctx) {
    const task = textOf(input) || "the task";
    const plan = await ctx.step("plan", async () => {
      await noteStepRan(ctx, "plan");
      return `Plan for ${task}, made at ${new Date().toISOString()}.`;
    });
    yield plan;
    const answer = yield {
      type: "message",
      message: { parts: [{ content: `Do you approve ${task}? Answer yes or no.` }] },
    };
    const reply = answer ? textOf([answer.message]).trim().toLowerCase() : "";
    if (!reply.startsWith("y")) {
      yield { parts: [{ content: `Not approved: ${task} dropped (attempt ${ctx.attempt}).` }] };
      return;
    }
    const receipt = await ctx.step("act", async () => {
      await noteStepRan(ctx, "act");
      return `Done: ${task}.`;
    });
    yield { parts: [{ content: `Approved. ${receipt} (attempt ${ctx.attempt})` }] };
  },
);

export const demoAgents = [
  echo,
  tokens,
  approval,
  artifacts,
  chat,
  historyEcho,
  failing,
  slow,
  durableSteps,
  durableApproval,
];

/**
 * The {@link AgentContext} a handler gets besides its input.
 */
import type { AgentContext } from "../agent.ts";
import type { SessionHistory } from "../session.ts";
import type { Cancellation } from "./cancellation.ts";
import type { DurableSteps } from "./durable.ts";

/** Refuses a step call that could not be recorded or replayed. */
function checkStep(name: unknown, fn: unknown): void {
  if (typeof name !== "string" || name === "")
    throw new TypeError(`[acp] ctx.step(): the name must be a non-empty string, got ${JSON.stringify(name)}`);
  if (name.startsWith("acp:")) throw new TypeError(`[acp] ctx.step(): step names starting with "acp:" are reserved`);
  if (typeof fn !== "function") throw new TypeError(`[acp] ctx.step("${name}"): the step must be a function`);
}

/**
 * A class rather than an object literal with a getter: one is made per run, and a literal with
 * an accessor is slow to create.
 */
export class RunContext implements AgentContext {
  readonly runId: string;
  readonly sessionId: string;
  readonly attempt: number;
  readonly #history: SessionHistory;
  readonly #cancellation: Cancellation;
  /** The recorded steps of a durable run; `undefined` for a run that is not durable. */
  readonly #steps: DurableSteps | undefined;

  constructor(
    runId: string,
    history: SessionHistory,
    cancellation: Cancellation,
    durable?: { attempt: number; steps: DurableSteps },
  ) {
    this.runId = runId;
    this.sessionId = history.sessionId;
    this.#history = history;
    this.#cancellation = cancellation;
    this.attempt = durable?.attempt ?? 1;
    this.#steps = durable?.steps;
  }

  /** Made when the handler first looks at it: most handlers never do. */
  get signal(): AbortSignal {
    return this.#cancellation.signal;
  }

  /** The messages of the session's earlier runs (their inputs and outputs), not this run's input: as the reference does. */
  get session(): AgentContext["session"] {
    const history = this.#history;
    return {
      async *loadHistory() {
        yield* history.messages();
      },
    };
  }

  async step<T>(name: string, fn: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
    checkStep(name, fn);
    if (this.#steps === undefined) return fn(this.#cancellation.signal);
    return this.#steps.run(name, fn);
  }
}

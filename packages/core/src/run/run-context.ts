/**
 * The {@link AgentContext} a handler gets besides its input.
 */
import type { AgentContext } from "../agent.ts";
import type { SessionHistory } from "../session.ts";
import type { Cancellation } from "./cancellation.ts";

/**
 * A class rather than an object literal with a getter: one is made per run, and a literal with
 * an accessor is slow to create.
 */
export class RunContext implements AgentContext {
  readonly runId: string;
  readonly sessionId: string;
  readonly #history: SessionHistory;
  readonly #cancellation: Cancellation;

  constructor(runId: string, history: SessionHistory, cancellation: Cancellation) {
    this.runId = runId;
    this.sessionId = history.sessionId;
    this.#history = history;
    this.#cancellation = cancellation;
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
}

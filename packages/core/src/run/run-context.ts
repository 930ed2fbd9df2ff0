/**
 * The {@link AgentContext} a handler gets besides its input.
 */
import type { AgentContext } from "../agent.ts";
import type { Message } from "../models.ts";
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
  readonly #input: Message[];
  readonly #cancellation: Cancellation;

  constructor(runId: string, history: SessionHistory, input: Message[], cancellation: Cancellation) {
    this.runId = runId;
    this.sessionId = history.sessionId;
    this.#history = history;
    this.#input = input;
    this.#cancellation = cancellation;
  }

  /** Made when the handler first looks at it: most handlers never do. */
  get signal(): AbortSignal {
    return this.#cancellation.signal;
  }

  /** The session's earlier messages, then this run's input. */
  get session(): AgentContext["session"] {
    const history = this.#history;
    const input = this.#input;
    return {
      async *loadHistory() {
        yield* history.messages();
        yield* input;
      },
    };
  }
}

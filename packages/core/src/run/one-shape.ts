/**
 * Messages and runs built field by field, so that every one the executor makes has one shape:
 * spreading the validator's output (whose shape varies) took V8's slow generic copy.
 */
import type { ErrorModel, Message, Run } from "../models.ts";
import { now } from "./now.ts";

/** A yielded message with its timestamps. */
export function stamped(message: Message, created_at: string, completed_at?: string): Message {
  return completed_at === undefined
    ? { role: message.role, parts: message.parts, created_at }
    : { role: message.role, parts: message.parts, created_at, completed_at };
}

/** A run's last state, finished now. */
export function ended(run: Run, status: Run["status"], output: Message[], error: ErrorModel | null): Run {
  const { run_id, agent_name, session_id, created_at } = run;
  return { run_id, agent_name, session_id, status, await_request: null, output, error, created_at, finished_at: now() };
}

// Fail to compile when Message or Run gains a field that stamped() or ended() would drop.
const STAMPED_FIELDS: Record<keyof Message, true> = { role: true, parts: true, created_at: true, completed_at: true };
const ENDED_FIELDS: Record<keyof Run, true> = {
  run_id: true,
  agent_name: true,
  session_id: true,
  status: true,
  await_request: true,
  output: true,
  error: true,
  created_at: true,
  finished_at: true,
};
void STAMPED_FIELDS;
void ENDED_FIELDS;

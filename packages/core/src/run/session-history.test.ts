/**
 * The session history a handler loads, as the reference (acp-sdk 1.0.3) gives it, through the
 * Runtime over an in-process memory store.
 */
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Agent, agent } from "../agent.ts";
import { type RunCreateRequest, RunCreateRequestSchema, type RunMode } from "../models.ts";
import type { Store } from "../store.ts";
import { Runtime } from "./runtime.ts";

const runtimes: Runtime[] = [];

beforeEach(() => {
  vi.spyOn(console, "error").mockImplementation(() => {});
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.shutdown({ deadlineMs: 0 })));
  vi.restoreAllMocks();
});

function runtimeOver(store: Store, agents: Agent[]): Runtime {
  const runtime = new Runtime({ store, agents });
  runtimes.push(runtime);
  return runtime;
}

function request(agentName: string, text: string, mode: RunMode, sessionId?: string): RunCreateRequest {
  return v.parse(RunCreateRequestSchema, {
    agent_name: agentName,
    input: [{ role: "user", parts: [{ content: text }] }],
    mode,
    ...(sessionId === undefined ? {} : { session_id: sessionId }),
  });
}

/** The reference's end-to-end `history_echo`: yields the session's history, then its input. */
const historyEcho = agent({ name: "history-echo" }, async function* (input, ctx) {
  for await (const message of ctx.session.loadHistory()) yield message;
  for (const message of input) yield message;
});

describe("session history", () => {
  for (const mode of ["sync", "async", "stream"] as const) {
    it(`loadHistory() yields the earlier runs' messages only: history_echo answers 1, 3, 7 (${mode})`, async () => {
      const runtime = runtimeOver(new MemoryStore(), [historyEcho]);
      const sessionId = randomUUID();
      const counts: number[] = [];
      for (const text of ["one", "two", "three"]) {
        const created = await runtime.createRun(request("history-echo", text, mode, sessionId));
        const ended = await runtime.whenSettled(created.run.run_id, created.version);
        expect(ended.run.status).toBe("completed");
        expect(ended.run.output.at(-1)!.parts[0]!.content).toBe(text);
        counts.push(ended.run.output.length);
      }
      expect(counts).toEqual([1, 3, 7]);
    });
  }
});

/**
 * `limits.maxRunDurationMs` through the Runtime: off by default; a run past it is cancelled.
 */
import { MemoryStore } from "@acp/store-memory";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { slow } from "../../test/support/agents.ts";
import { LIMIT_DEFAULTS } from "../limits.ts";
import { RunCreateRequestSchema } from "../models.ts";
import { Runtime } from "./runtime.ts";

const runtimes: Runtime[] = [];

beforeEach(() => {
  vi.spyOn(console, "warn").mockImplementation(() => {});
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.shutdown({ deadlineMs: 0 })));
  vi.restoreAllMocks();
});

const slowRun = v.parse(RunCreateRequestSchema, {
  agent_name: "slow",
  input: [{ role: "user", parts: [{ content: "ticks=1000 ms=10" }] }],
  mode: "async",
});

describe("limits.maxRunDurationMs", () => {
  it("is off by default, and must be a whole number of milliseconds", () => {
    expect(LIMIT_DEFAULTS).not.toHaveProperty("maxRunDurationMs");
    expect(new Runtime({ store: new MemoryStore(), agents: [slow] }).limits.maxRunDurationMs).toBeUndefined();
    expect(() => new Runtime({ store: new MemoryStore(), agents: [slow], limits: { maxRunDurationMs: 0 } })).toThrow(
      "limits.maxRunDurationMs must be a whole number of at least 1, got 0",
    );
  });

  it("cancels a run that lasts longer", async () => {
    const runtime = new Runtime({ store: new MemoryStore(), agents: [slow], limits: { maxRunDurationMs: 200 } });
    runtimes.push(runtime);
    const created = await runtime.createRun(slowRun);
    const began = Date.now();
    const ended = await runtime.whenSettled(created.run.run_id, created.version);
    expect(ended.run).toMatchObject({ status: "cancelled", error: null });
    expect(Date.now() - began).toBeLessThan(2_000);
    expect(ended.run.output[0]!.parts.length).toBeGreaterThan(1);
    expect(console.warn).toHaveBeenCalledWith(expect.stringContaining("ran past maxRunDurationMs (200 ms)"));
  });
});

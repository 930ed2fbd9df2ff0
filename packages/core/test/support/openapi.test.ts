import { describe, expect, it } from "vitest";
import { assertMatchesSchema } from "./openapi.ts";

const runId = "2f1c4a9e-7b3d-4c58-9a61-0d2e8f5b3c47";
const sessionId = "8a6e0f1d-5c2b-4e79-b3a4-61f7d9c0e215";

function validRun(): Record<string, unknown> {
  return {
    agent_name: "echo",
    session_id: sessionId,
    run_id: runId,
    status: "completed",
    await_request: null,
    output: [
      {
        role: "agent/echo",
        parts: [{ content_type: "text/plain", content: "hello", metadata: null }],
        created_at: "2025-06-01T12:00:00Z",
        completed_at: "2025-06-01T12:00:01.250Z",
      },
    ],
    error: null,
    created_at: "2025-06-01T12:00:00Z",
    finished_at: "2025-06-01T12:00:01.250Z",
  };
}

describe("assertMatchesSchema", () => {
  it("accepts a run whose nullable fields are null", () => {
    expect(() => assertMatchesSchema("Run", validRun())).not.toThrow();
  });

  it("accepts a failed run carrying an error", () => {
    const run = {
      ...validRun(),
      status: "failed",
      error: { code: "server_error", message: "agent crashed", data: null },
    };
    expect(() => assertMatchesSchema("Run", run)).not.toThrow();
  });

  it("accepts an error", () => {
    expect(() => assertMatchesSchema("Error", { code: "not_found", message: "run not found" })).not.toThrow();
  });

  it("accepts events of several types", () => {
    const events = [
      { type: "run.created", run: { ...validRun(), status: "created", output: [], finished_at: undefined } },
      { type: "message.part", part: { content_type: "text/plain", content: "he" } },
      {
        type: "message.part",
        part: {
          content_type: "text/plain",
          metadata: { kind: "citation", start_index: null, url: "https://example.com" },
        },
      },
      { type: "generic", generic: { progress: 0.5 } },
      { type: "error", error: { code: "server_error", message: "internal error" } },
    ];
    for (const event of JSON.parse(JSON.stringify(events)) as unknown[]) {
      expect(() => assertMatchesSchema("Event", event)).not.toThrow();
    }
  });

  it("rejects a message part with both content and content_url", () => {
    const part = { content_type: "text/plain", content: "hello", content_url: "https://example.com/hello.txt" };
    expect(() => assertMatchesSchema("MessagePart", part)).toThrow(/MessagePart[\s\S]*must NOT be valid/);
  });

  it("rejects a run without run_id and names the missing property", () => {
    const { run_id: _, ...run } = validRun();
    expect(() => assertMatchesSchema("Run", run)).toThrow(/must have required property 'run_id'/);
  });

  it("rejects an event of unknown type", () => {
    expect(() => assertMatchesSchema("Event", { type: "run.exploded", run: validRun() })).toThrow(
      /must match exactly one schema in oneOf/,
    );
  });

  it("rejects metadata of an unknown kind", () => {
    const part = { content_type: "text/plain", metadata: { kind: "footnote" } };
    expect(() => assertMatchesSchema("MessagePart", part)).toThrow(/\/metadata/);
  });

  it("rejects a malformed value in a nullable field", () => {
    expect(() => assertMatchesSchema("Run", { ...validRun(), error: { message: "no code" } })).toThrow(/\/error/);
  });

  it("reports an unknown component name", () => {
    expect(() => assertMatchesSchema("Nope", {})).toThrow(/no schema "Nope"/);
  });
});

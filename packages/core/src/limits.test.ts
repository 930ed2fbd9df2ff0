import { describe, expect, it } from "vitest";
import { ACPError } from "./errors.ts";
import { checkMessageParts, checkRunInput, eventLimitError, resolveLimits } from "./limits.ts";
import type { Message } from "./models.ts";

const message = (parts: number): Message => ({
  role: "user",
  parts: Array.from({ length: parts }, (_, index) => ({
    content: String(index),
    content_type: "text/plain",
    content_encoding: "plain" as const,
  })),
});

describe("resolveLimits", () => {
  it("fills in the defaults", () => {
    expect(resolveLimits()).toEqual({
      maxInputMessages: 100,
      maxPartsPerMessage: 100,
      maxEventsPerRun: 100_000,
      maxHistoryItems: 1_000,
      maxHistoryBytes: 16 * 1024 * 1024,
      maxSessionItems: 10_000,
      maxSessionBytes: 16 * 1024 * 1024,
      maxConcurrentRuns: 1_000,
      maxStreams: 10_000,
      maxStepBytes: 1024 * 1024,
    });
    expect(resolveLimits({ maxInputMessages: 3 }).maxInputMessages).toBe(3);
  });

  it("throws on a limit that is not a whole number of at least 1", () => {
    expect(() => resolveLimits({ maxInputMessages: 0 })).toThrow(/limits.maxInputMessages/);
    expect(() => resolveLimits({ maxPartsPerMessage: 1.5 })).toThrow(/limits.maxPartsPerMessage/);
    expect(() => resolveLimits({ maxEventsPerRun: Number.NaN })).toThrow(/limits.maxEventsPerRun/);
  });
});

describe("checkRunInput", () => {
  const limits = resolveLimits({ maxInputMessages: 2, maxPartsPerMessage: 3 });

  it("accepts input at the limits", () => {
    expect(() => checkRunInput([message(3), message(1)], limits)).not.toThrow();
  });

  it("refuses too many messages with a 422 naming the limit", () => {
    const error = catchError(() => checkRunInput([message(1), message(1), message(1)], limits));
    expect(error.status).toBe(422);
    expect(error.toJSON()).toMatchObject({
      code: "invalid_input",
      data: { limit: "maxInputMessages", max: 2, actual: 3 },
    });
    expect(error.message).toContain("maxInputMessages");
  });

  it("refuses a message with too many parts, saying which one", () => {
    const error = catchError(() => checkRunInput([message(1), message(4)], limits));
    expect(error.message).toContain("input[1] has 4 parts");
    expect(error.message).toContain("maxPartsPerMessage");
    expect(() => checkMessageParts(message(4), limits, "await_resume.message")).toThrow(/await_resume.message/);
  });
});

describe("eventLimitError", () => {
  it("is a server_error that names the limit", () => {
    expect(eventLimitError(5).toJSON()).toEqual({
      code: "server_error",
      message: "The run exceeded the limit of 5 events",
    });
  });
});

function catchError(run: () => void): ACPError {
  try {
    run();
  } catch (error) {
    if (error instanceof ACPError) return error;
    throw error;
  }
  throw new Error("expected an ACPError");
}

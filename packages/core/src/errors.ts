/**
 * The one error type of ACP: `{ code, message, data? }` on the wire. Handlers throw it to fail a
 * run with exactly that error; the HTTP layer maps it to a status.
 */
import type { ErrorCode, ErrorModel } from "./models.ts";

export interface ACPErrorInit {
  code: ErrorCode;
  message: string;
  data?: Record<string, unknown> | null;
  /** HTTP status when this error answers a request. @default by code: 404, 422 or 500 */
  status?: number;
}

const STATUS_BY_CODE: Record<ErrorCode, number> = { not_found: 404, invalid_input: 422, server_error: 500 };

/**
 * An ACP error. Thrown by an agent it fails the run with this exact error; thrown by the server
 * it answers the request with `{ code, message, data? }`.
 * @example
 * throw new ACPError({ code: "invalid_input", message: "the input needs an image part" });
 */
export class ACPError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown> | null | undefined;
  readonly status: number;

  constructor({ code, message, data, status }: ACPErrorInit) {
    super(message);
    this.name = "ACPError";
    this.code = code;
    this.data = data;
    this.status = status ?? STATUS_BY_CODE[code];
  }

  /** The wire form. */
  toJSON(): ErrorModel {
    return this.data == null
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

export function notFound(message: string): ACPError {
  return new ACPError({ code: "not_found", message });
}

export function invalidInput(message: string, status = 422): ACPError {
  return new ACPError({ code: "invalid_input", message, status });
}

/** The wire error for anything that is not an ACPError: no message or stack of the original leaks. */
export function toErrorModel(error: unknown, fallbackMessage = "Internal server error"): ErrorModel {
  if (error instanceof ACPError) return error.toJSON();
  return { code: "server_error", message: fallbackMessage };
}

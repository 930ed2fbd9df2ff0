/** Which PostgreSQL failures are a refused value rather than an outage. */
import { StoreRefusedError } from "@acp/core";

/**
 * SQLSTATE classes in which the server refused the data it was sent: 22 data exception (a NUL
 * or an unpaired surrogate in JSON text, a value out of range), 23 integrity constraint
 * violation, 54 program limit exceeded (a value too large). Sending it again fails the same way.
 */
const REFUSAL_CLASSES = new Set(["22", "23", "54"]);

/**
 * `error` as a {@link StoreRefusedError} when PostgreSQL refused the value (see
 * {@link REFUSAL_CLASSES}), naming the operation and the SQLSTATE; `undefined` for any other
 * failure (connection lost, serialization failure, missing table), which is an outage.
 */
export function refusalOf(what: string, error: unknown): StoreRefusedError | undefined {
  const code: unknown = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || code.length !== 5 || !REFUSAL_CLASSES.has(code.slice(0, 2))) return undefined;
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreRefusedError("store-postgres", `${what} refused the value (SQLSTATE ${code}): ${reason}`, {
    cause: error,
  });
}

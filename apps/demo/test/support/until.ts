/** Polling for a condition in end-to-end tests, with a message that says what never happened. */

/**
 * Calls `check` every `pollMs` until it returns something other than undefined; fails after `ms`
 * saying `what` (and the last error `check` threw, if any).
 */
export async function pollUntil<T>(
  what: string | (() => string),
  check: () => Promise<T | undefined>,
  ms: number,
  pollMs: number,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const reason = last ? ` (last error: ${(last as Error).message})` : "";
      throw new Error(`${typeof what === "string" ? what : what()}: not within ${ms} ms${reason}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** The bench's clock, shared by its servers and its client processes (kept free of imports). */

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

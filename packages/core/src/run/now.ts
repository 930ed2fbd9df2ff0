/** The time as ISO 8601, formatted once per millisecond: a run asks for it several times, and formatting a Date is slow. */
let lastMs = 0;
let lastIso = "";

export function now(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

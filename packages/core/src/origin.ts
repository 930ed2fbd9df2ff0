/** Origins as operators write them in options (CORS, allowed history origins). */

/** Whether `value` is exactly an http(s) origin: scheme, host and port, no path. */
export function isOrigin(value: unknown): boolean {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}

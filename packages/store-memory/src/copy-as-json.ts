/**
 * A deep copy of a value exactly as `JSON.parse(JSON.stringify(value))` would make it, written
 * out by hand: on Node 20 the round trip through text costs five to seven times as much, and the
 * memory store copies every record and event it takes in or hands out.
 *
 * Like JSON: `toJSON()` is honoured (a Date becomes its ISO string), `undefined`, functions and
 * symbols are left out of objects and become `null` in arrays, non-finite numbers become `null`,
 * and a BigInt throws a TypeError.
 */
export function copyAsJson<T>(value: T, shared?: Copies): T {
  return copyValue(value, "", shared) as T;
}

/**
 * Copies made so far, by original, to share between values written together: a run's record and
 * its `run.completed` event hold the same run, which is then copied once. What is stored may
 * share parts that way; every read copies again, so no reader can tell.
 */
export type Copies = Map<object, unknown>;

function copyValue(value: unknown, key: string, shared: Copies | undefined): unknown {
  if (typeof value === "object" && value !== null) {
    if (typeof (value as { toJSON?: unknown }).toJSON === "function")
      return copyValue((value as { toJSON(key: string): unknown }).toJSON(key), key, undefined);
    const copied = shared?.get(value);
    if (copied !== undefined) return copied;
  }
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      // JSON writes -0 as 0.
      return Number.isFinite(value) ? (value === 0 ? 0 : value) : null;
    case "bigint":
      throw new TypeError("Do not know how to serialize a BigInt");
    case "object":
      if (value === null) return null;
      if (Array.isArray(value)) return remember(shared, value, copyArray(value, shared));
      // Boxed primitives (new String("x")) stand for their primitive in JSON.
      if (value instanceof String || value instanceof Number || value instanceof Boolean)
        return copyValue(value.valueOf(), key, undefined);
      return remember(shared, value, copyObject(value as Record<string, unknown>, shared));
    default:
      // undefined, functions and symbols have no JSON form.
      return undefined;
  }
}

function remember(shared: Copies | undefined, original: object, copied: unknown): unknown {
  shared?.set(original, copied);
  return copied;
}

function copyArray(array: readonly unknown[], shared: Copies | undefined): unknown[] {
  const copied = new Array<unknown>(array.length);
  for (let index = 0; index < array.length; index++)
    copied[index] = copyValue(array[index], String(index), shared) ?? null;
  return copied;
}

function copyObject(object: Record<string, unknown>, shared: Copies | undefined): Record<string, unknown> {
  const copied: Record<string, unknown> = {};
  for (const key of Object.keys(object)) {
    const item = copyValue(object[key], key, shared);
    if (item === undefined) continue;
    // A "__proto__" key is data in JSON; assigning it would set the copy's prototype instead.
    if (key === "__proto__")
      Object.defineProperty(copied, key, { value: item, enumerable: true, writable: true, configurable: true });
    else copied[key] = item;
  }
  return copied;
}

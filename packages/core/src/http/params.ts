/**
 * Parameters, query values and headers as validated values, or an `invalid_input` error that
 * names the field.
 */
import * as v from "valibot";
import { invalidInput } from "../errors.ts";

/** Parses a body or a parameter, or throws an `invalid_input` error naming the field. */
export function parse<T>(schema: v.GenericSchema<unknown, T>, value: unknown, where: string): T {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const path = issue.path?.map((item) => String(item.key)).join(".");
  if (path && issue.input === undefined && issue.kind === "schema")
    throw invalidInput(`Invalid ${where}: ${path} is required`);
  throw invalidInput(`Invalid ${where}${path ? ` at ${path}` : ""}: ${issue.message}`);
}

/** `?limit=` of `GET /agents`: 1 to 1000. */
export const LimitSchema = v.pipe(
  v.unknown(),
  v.transform(Number),
  v.integer("limit must be an integer"),
  v.minValue(1, "limit must be at least 1"),
  v.maxValue(1000, "limit must be at most 1000"),
);
/** `?offset=` of `GET /agents`: 0 or more. */
export const OffsetSchema = v.pipe(
  v.unknown(),
  v.transform(Number),
  v.integer("offset must be an integer"),
  v.minValue(0, "offset must be at least 0"),
);
/** The largest event id there can be: stores keep `seq` in 32-bit integer columns (PostgreSQL's `integer`). */
export const MAX_EVENT_ID = 2 ** 31 - 1;

/** The `Last-Event-ID` header: event ids are the `seq` numbers this server sends; anything else is not an id of ours. */
export const LastEventIdSchema = v.pipe(
  v.string(),
  v.regex(/^\d{1,15}$/, "it must be the id of an event this server sent, a whole number"),
  v.transform(Number),
  v.maxValue(MAX_EVENT_ID, `it must be the id of an event this server sent, at most ${MAX_EVENT_ID}`),
);
/** A history item's id in `/resources/:resource_id`. */
export const ResourceIdSchema = v.pipe(v.string(), v.uuid("must be a UUID"));

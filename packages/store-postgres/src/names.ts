/**
 * Validation of the table and channel names a store is configured with. They end up in SQL as
 * identifiers (quoted by postgres.js), so they are checked once, when the store is built.
 */

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/i;

/** Suffixes of the tables derived from the configured table name. */
export const TABLE_SUFFIXES = ["_events", "_history", "_steps", "_schema"] as const;

/** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), so derived names must fit too. */
const MAX_IDENTIFIER_LENGTH = 63;
const MAX_TABLE_LENGTH = MAX_IDENTIFIER_LENGTH - Math.max(...TABLE_SUFFIXES.map((suffix) => suffix.length));

/**
 * Throws a `TypeError` naming the option when `value` is not a plain SQL identifier.
 * @param option the option's name, shown in the error
 */
export function assertIdentifier(option: "table" | "channel", value: unknown): asserts value is string {
  if (typeof value !== "string" || !IDENTIFIER.test(value)) {
    throw new TypeError(
      `[acp] [store-postgres] ${option} must be an SQL identifier: a letter or underscore, then letters, ` +
        `digits or underscores, at most 63 characters (got ${JSON.stringify(value)})`,
    );
  }
  if (option === "table" && value.length > MAX_TABLE_LENGTH) {
    throw new TypeError(
      `[acp] [store-postgres] table must be at most ${MAX_TABLE_LENGTH} characters, so that ` +
        `"${value}${TABLE_SUFFIXES[1]}" fits PostgreSQL's 63-character identifiers (got ${value.length})`,
    );
  }
}
